"""γ policies: FLSD tables (exact boundaries), Lambert-W γ(p) against scipy and its defining
equation, epoch schedules, the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from focalcal.losses import FocalLoss, focal_loss
from focalcal.losses.gamma import (
    FixedGamma,
    LambertWGamma,
    ScheduledGamma,
    ThresholdGamma,
    focal_gamma_root,
    get_gamma_policy,
    lambertw_m1,
)


@pytest.mark.parametrize(
    ("name", "p", "expected"),
    [
        ("flsd53", [0.0, 0.19999, 0.2, 0.49999, 0.5, 0.9, 1.0], [5, 5, 3, 3, 3, 3, 3]),
        ("flsd52", [0.0, 0.19999, 0.2, 0.49999, 0.5, 0.9, 1.0], [5, 5, 3, 3, 2, 2, 2]),
        ("flsd53_sst", [0.18999, 0.19, 0.2, 0.5], [5, 3, 3, 3]),
    ],
)
def test_threshold_tables_have_exact_boundaries(name: str, p, expected) -> None:
    gamma = get_gamma_policy(name)(torch.tensor(p, dtype=torch.float64))
    assert gamma.tolist() == [float(v) for v in expected]


def test_flsd_uses_target_probability_not_confidence() -> None:
    # [2, 1, 0]: p = (.665, .245, .090). Target 1 → p_y = .245 → γ = 3; target 2 → γ = 5.
    logits = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    for target, gamma in ((0, 3.0), (1, 3.0), (2, 5.0)):
        t = torch.tensor([target])
        torch.testing.assert_close(focal_loss(logits, t, "flsd53"), focal_loss(logits, t, gamma))


def test_lambertw_matches_scipy() -> None:
    special = pytest.importorskip("scipy.special")
    x = -np.concatenate([np.logspace(-300, -1e-4, 400) / math.e, [1e-3, 0.2, 0.36]])
    ours = lambertw_m1(torch.tensor(x)).numpy()
    expected = np.real(special.lambertw(x, k=-1))
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    # next to the branch point -1/e scipy loses digits; check the defining equation w·e^w = x
    near = torch.tensor(-np.logspace(-1e-5, -1e-12, 50) / math.e, dtype=torch.float64)
    w = lambertw_m1(near)
    torch.testing.assert_close(w * w.exp(), near, rtol=1e-14, atol=0)
    assert (w <= -1).all()
    assert torch.isnan(lambertw_m1(torch.tensor([0.1, -0.5]))).all()  # outside [-1/e, 0)


def test_focal_gamma_root_solves_the_defining_equation() -> None:
    p = torch.linspace(0.01, 0.49, 97, dtype=torch.float64)
    gamma = focal_gamma_root(p)
    # g(p, γ) = (1-p)^γ - γ p (1-p)^(γ-1) log p = 1, the focal/CE gradient ratio
    g = (1 - p) ** gamma - gamma * p * (1 - p) ** (gamma - 1) * torch.log(p)
    torch.testing.assert_close(g, torch.ones_like(g), rtol=0, atol=1e-9)
    assert (gamma.diff() < 0).all()  # decreasing in p
    assert abs(focal_gamma_root(torch.tensor(0.2)).item() - 4.8506) < 1e-4  # the "5" of FLSD-53
    assert focal_gamma_root(torch.tensor([0.5, 0.7, 1.0])).eq(0).all()
    assert math.isinf(focal_gamma_root(torch.tensor(0.0)).item())


def test_lambertw_policy_is_the_clipped_root_and_rounds_to_flsd53() -> None:
    p = torch.tensor([0.05, 0.1, 0.19, 0.22, 0.3, 0.6])
    policy = LambertWGamma(gamma_min=3.0, gamma_max=5.0)
    expected = focal_gamma_root(p).clamp(3.0, 5.0).float()
    torch.testing.assert_close(policy(p), expected)
    table = get_gamma_policy("flsd53")(p)
    assert (policy(p).round() == table).sum() >= 5


def test_schedule_flsc531_steps_at_100_and_250() -> None:
    policy = get_gamma_policy("flsc531")
    values = {}
    for epoch in (0, 99, 100, 249, 250, 349):
        policy.set_epoch(epoch)
        values[epoch] = policy(torch.tensor([0.3]))
    assert values == {0: 5.0, 99: 5.0, 100: 3.0, 249: 3.0, 250: 1.0, 349: 1.0}
    tiny = ScheduledGamma({0: 5.0, 30: 3.0, 70: 2.0})  # Tiny-ImageNet steps
    tiny.set_epoch(70)
    assert tiny.gamma == 2.0
    with pytest.raises(ValueError, match="epoch: expected an integer >= 0"):
        tiny.set_epoch(-1)
    with pytest.raises(ValueError, match=r"milestones: .*epoch 0"):
        ScheduledGamma({10: 1.0})


def test_scheduled_loss_follows_set_epoch() -> None:
    loss = FocalLoss("flsc532")
    logits = torch.randn(6, 4)
    target = torch.randint(0, 4, (6,))
    loss.set_epoch(300)
    torch.testing.assert_close(loss(logits, target), focal_loss(logits, target, 2.0))


def test_policy_objects_and_validation() -> None:
    assert get_gamma_policy(2).gamma == 2.0
    assert isinstance(get_gamma_policy(FixedGamma(1.5)), FixedGamma)
    custom = ThresholdGamma((0.1, 0.3, 0.6), (8.0, 5.0, 3.0), default=1.0)
    assert custom(torch.tensor([0.05, 0.2, 0.5, 0.7])).tolist() == [8.0, 5.0, 3.0, 1.0]
    # redundant steps (equal neighbours) and non-representable γ: exact values at the boundaries
    p = torch.tensor([0.0, 0.1, 0.2999, 0.3, 0.45, 0.6, 0.7, 1.0])
    for thresholds, gammas, default in [
        ((0.1, 0.3, 0.6), (8.0, 8.0, 3.0), 3.0),
        ((0.1, 0.3, 0.6), (0.3, 0.1, 0.7), 0.3),
        ((0.3,), (2.0,), 2.0),
    ]:
        expected = torch.full_like(p, default)
        for threshold, value in zip(reversed(thresholds), reversed(gammas), strict=True):
            expected = torch.where(p < threshold, value, expected)
        got = ThresholdGamma(thresholds, gammas, default=default)(p)
        assert torch.equal(got, expected), (thresholds, gammas, got, expected)
    with pytest.raises(ValueError, match="thresholds: expected strictly increasing"):
        ThresholdGamma((0.5, 0.2), (5.0, 3.0), default=3.0)
    with pytest.raises(ValueError, match="gamma_max: expected >= gamma_min"):
        LambertWGamma(gamma_min=5.0, gamma_max=3.0)
    with pytest.raises(ValueError, match="gamma: expected gamma >= 0"):
        get_gamma_policy(ThresholdGamma((0.5,), (-1.0,), default=1.0))
    assert get_gamma_policy(-1.0, allow_negative=True).gamma == -1.0
