"""Soft (probability) targets and label_smoothing= on every loss where the formula extends."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from focalcal.losses import (
    AdaDualFocalLoss,
    AdaFocalLoss,
    dual_focal_loss,
    focal_loss,
    get_loss,
    inverse_focal_loss,
    mmce_loss,
)

C = 5
F64 = torch.float64


def _adafocal(cls):
    """AdaFocal with varied per-bin γ (negative ones too: inverse focal), so bins matter."""
    loss = cls()
    gammas = [3.0, -1.0, 0.5, 2.0] if cls is AdaFocalLoss else [3.0, 1.0, 0.5, 2.0]
    loss.set_bins([0.0, 0.2, 0.45, 0.7, 1.0], gammas)
    return loss


SOFT_LOSSES = {
    "focal": lambda **kw: get_loss("focal", gamma=2.0, **kw),
    "flsd53": lambda **kw: get_loss("flsd53", **kw),
    "inverse_focal": lambda **kw: get_loss("inverse_focal", gamma=1.5, **kw),
    "dual_focal": lambda **kw: get_loss("dual_focal", gamma=3.0, **kw),
    "dual_flsd53": lambda **kw: get_loss("dual_flsd53", **kw),
    "adafocal": lambda **kw: _with(_adafocal(AdaFocalLoss), **kw),
    "ada_dual_focal": lambda **kw: _with(_adafocal(AdaDualFocalLoss), **kw),
    "ce": lambda **kw: get_loss("ce", **kw),
    "label_smoothing": lambda **kw: get_loss("label_smoothing", eps=0.1, **kw),
    "brier": lambda **kw: get_loss("brier", **kw),
}


def _with(loss, **kw):
    for key, value in kw.items():
        setattr(loss, key, value)
    return loss


def _inputs(shape=(12,), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape[0], C, *shape[1:], generator=g, dtype=F64) * 2).requires_grad_()
    labels = torch.randint(0, C, shape, generator=g)
    return logits, labels


@pytest.mark.parametrize("name", sorted(SOFT_LOSSES))
@pytest.mark.parametrize("shape", [(12,), (3, 2, 2)])
def test_one_hot_soft_targets_equal_hard_targets(name, shape, cpu_kernel) -> None:
    logits, labels = _inputs(shape)
    one_hot = F.one_hot(labels, C).movedim(-1, 1).to(F64)
    weight = torch.rand(C, dtype=F64) + 0.5
    cases = [("mean", None), ("sum", None), ("none", None), ("sum", weight), ("none", weight)]
    for reduction, w in cases:
        loss = SOFT_LOSSES[name](reduction=reduction, weight=w)
        hard = loss(logits, labels)
        soft = loss(logits, one_hot)
        assert torch.allclose(soft, hard, rtol=1e-10, atol=1e-12), (reduction, w is None)
        g_hard = torch.autograd.grad(hard.sum(), logits)[0]
        g_soft = torch.autograd.grad(soft.sum(), logits)[0]
        assert torch.allclose(g_soft, g_hard, rtol=1e-8, atol=1e-11), (reduction, w is None)


def _reference_terms(logits, gamma_of_p, dual: bool = False):
    """−(1 − p_c + p_j(c))^γ_c log p_c per class, by a loop over the classes of every row."""
    p = torch.softmax(logits.detach(), dim=1)
    terms = torch.zeros_like(p)
    for i in range(p.shape[0]):
        for c in range(p.shape[1]):
            below = [float(v) for v in p[i] if v < p[i, c]]
            p_j = max(below) if (dual and below) else 0.0
            reference = float(p[i, c]) - p_j if dual else float(p[i, c])
            terms[i, c] = -((1 - p[i, c] + p_j) ** gamma_of_p(reference)) * torch.log(p[i, c])
    return terms


def _flsd53(p: float) -> float:
    return 5.0 if p < 0.2 else 3.0


@pytest.mark.parametrize(
    ("loss", "gamma_of_p", "dual"),
    [
        (lambda z, q: focal_loss(z, q, 2.0, reduction="none"), lambda p: 2.0, False),
        (lambda z, q: focal_loss(z, q, "flsd53", reduction="none"), _flsd53, False),
        (lambda z, q: dual_focal_loss(z, q, 3.0, reduction="none"), lambda p: 3.0, True),
        (lambda z, q: dual_focal_loss(z, q, "flsd53", reduction="none"), _flsd53, True),
    ],
)
def test_soft_targets_match_the_formula_class_by_class(loss, gamma_of_p, dual) -> None:
    logits, _ = _inputs((10,), seed=3)
    q = torch.softmax(torch.randn(10, C, dtype=F64), dim=1)
    expected = (q * _reference_terms(logits, gamma_of_p, dual)).sum(1)
    assert torch.allclose(loss(logits, q), expected, rtol=1e-10)


def test_inverse_focal_soft_targets_match_the_formula() -> None:
    logits, _ = _inputs((10,), seed=4)
    q = torch.softmax(torch.randn(10, C, dtype=F64), dim=1)
    p = torch.softmax(logits, dim=1)
    expected = -(q * (1 + p) ** 1.5 * torch.log(p)).sum(1)
    assert torch.allclose(inverse_focal_loss(logits, q, 1.5, reduction="none"), expected)


@pytest.mark.parametrize(
    "loss",
    [
        lambda **kw: get_loss("focal", gamma=0.0, **kw),
        lambda **kw: get_loss("dual_focal", gamma=0.0, **kw),
        lambda **kw: get_loss("inverse_focal", gamma=0.0, **kw),
        lambda **kw: _with(AdaFocalLoss(gamma_init=0.0), **kw),
    ],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_at_gamma_zero_is_torch_cross_entropy(loss, reduction, cpu_kernel) -> None:
    logits, labels = _inputs((4, 3))
    labels[0, :2] = 7
    weight = torch.rand(C, dtype=F64) + 0.5
    for w in (None, weight):
        criterion = loss(label_smoothing=0.2, weight=w, ignore_index=7, reduction=reduction)
        got = criterion(logits, labels)
        expected = F.cross_entropy(logits, labels, weight=w, ignore_index=7,
                                   reduction=reduction, label_smoothing=0.2)  # fmt: skip
        assert torch.allclose(got, expected, rtol=1e-12)
        g = torch.autograd.grad(got.sum(), logits)[0]
        g_expected = torch.autograd.grad(expected.sum(), logits)[0]
        assert torch.allclose(g, g_expected, rtol=1e-10, atol=1e-14)
        # soft targets with smoothing too: F.cross_entropy's probability-target form
        q = torch.softmax(torch.randn(4, C, 3, dtype=F64), dim=1)
        expected = F.cross_entropy(logits, q, weight=w, reduction=reduction, label_smoothing=0.2)
        assert torch.allclose(criterion(logits, q), expected, rtol=1e-12)


def test_label_smoothing_changes_the_focal_loss_as_the_smoothed_target_does() -> None:
    logits, labels = _inputs()
    q = F.one_hot(labels, C).to(F64) * 0.7 + 0.3 / C
    for name in ("focal", "flsd53", "dual_focal", "dual_flsd53"):
        smoothed = get_loss(name, label_smoothing=0.3)(logits, labels)
        assert torch.allclose(smoothed, get_loss(name)(logits, q), rtol=1e-12), name
        assert not torch.allclose(smoothed, get_loss(name)(logits, labels)), name


@pytest.mark.parametrize("name", ["focal", "flsd53", "dual_focal", "dual_flsd53", "adafocal",
                                  "ada_dual_focal", "inverse_focal", "brier", "ce"])  # fmt: skip
def test_float64_gradcheck_with_soft_targets_and_smoothing(name) -> None:
    logits, labels = _inputs((6,), seed=5)
    q = torch.softmax(torch.randn(6, C, dtype=F64), dim=1)
    loss = SOFT_LOSSES[name]()
    assert torch.autograd.gradcheck(lambda z: loss(z, q), (logits,))
    if hasattr(loss, "label_smoothing"):
        loss.label_smoothing = 0.1
        assert torch.autograd.gradcheck(lambda z: loss(z, labels), (logits,))


def test_soft_brier_is_the_squared_distance_to_the_target() -> None:
    logits, _ = _inputs()
    q = torch.softmax(torch.randn(12, C, dtype=F64), dim=1)
    expected = (torch.softmax(logits, 1) - q).square().sum(1).mean()
    assert torch.allclose(get_loss("brier")(logits, q), expected)


def test_low_precision_logits_take_float32_soft_targets() -> None:
    logits, _ = _inputs()
    q = torch.softmax(torch.randn(12, C), dim=1)
    half = focal_loss(logits.detach().to(torch.bfloat16), q.to(torch.bfloat16), validate=False)
    assert half.dtype == torch.float32 and torch.isfinite(half)


@pytest.mark.parametrize(
    ("target", "error", "pattern"),
    [
        (torch.full((12, C), 0.3, dtype=F64), ValueError, r"row sums off by up to 0\.5"),
        (torch.full((12, C), -0.2, dtype=F64).index_fill_(1, torch.tensor([0]), 1.8),
         ValueError, r"values in \[-0\.2, 1\.8\]"),
        (torch.full((12, C + 1), 1 / (C + 1), dtype=F64), ValueError,
         r"target: expected class probabilities of the logits' shape \(12, 5\)"),
        (torch.zeros(12, dtype=F64), TypeError, r"convert it with \.long\(\)"),
        (torch.full((12, C), float("nan"), dtype=F64), ValueError, "target: expected finite"),
    ],
)  # fmt: skip
def test_bad_soft_targets_raise_a_clear_error(target, error, pattern) -> None:
    logits, _ = _inputs()
    for name in ("focal", "dual_focal", "adafocal", "ce", "label_smoothing", "brier"):
        with pytest.raises(error, match=pattern):
            SOFT_LOSSES[name]()(logits, target)


def test_validate_false_skips_the_row_sum_check() -> None:
    logits, _ = _inputs()
    q = torch.full((12, C), 0.3, dtype=F64)
    assert torch.isfinite(focal_loss(logits, q, validate=False))


def test_a_float32_target_within_rounding_passes() -> None:
    logits, _ = _inputs()
    q = torch.softmax(torch.randn(12, C) * 30, dim=1)  # float32 rows, off 1 by a few ulps
    assert torch.isfinite(focal_loss(logits.float(), q))


def test_mmce_says_it_has_no_soft_form() -> None:
    logits, _ = _inputs()
    q = torch.softmax(torch.randn(12, C, dtype=F64), dim=1)
    with pytest.raises(TypeError, match="mmce_loss has no soft-target form"):
        mmce_loss(logits, q)
    with pytest.raises(TypeError, match="mmce_loss has no soft-target form"):
        get_loss("mmce")(logits, q)


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.1", True])
def test_bad_label_smoothing_raises(value) -> None:
    logits, labels = _inputs()
    with pytest.raises((TypeError, ValueError), match="label_smoothing: expected a number"):
        focal_loss(logits, labels, label_smoothing=value)
    with pytest.raises((TypeError, ValueError), match="label_smoothing: expected a number"):
        get_loss("dual_focal", label_smoothing=value)
