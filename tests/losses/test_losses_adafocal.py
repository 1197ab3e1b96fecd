"""AdaFocal / AdaDualFocal: the update from validation predictions against a direct loop, the
per-sample bin lookup, state in the state_dict, both variants, and AdaDualFocal really adapting."""

from __future__ import annotations

import numpy as np
import torch

from focalcal.losses import AdaDualFocalLoss, AdaFocalLoss, adafocal_gamma_update, dual_focal_loss


def _validation(n: int, c: int, seed: int, sharpness: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * sharpness
    labels = torch.randint(0, c, (n,), generator=g)
    labels[: n // 2] = logits[: n // 2].argmax(1)  # about half correct
    return torch.softmax(logits, 1), labels


def _reference_update(probs, labels, gammas, n_bins, lam=1.0, s_th=0.2, g_min=-2.0, g_max=20.0):
    """Direct loop: equal-mass edges by np.interp, (lo, hi] bins, official signed rule."""
    conf = probs.max(1).values.numpy()
    correct = (probs.argmax(1) == labels).numpy().astype(float)
    n = conf.size
    edges = np.interp(np.linspace(0, n, n_bins + 1), np.arange(n), np.sort(conf))
    new = []
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        members = [i for i in range(n) if (lo < conf[i] <= hi) or (b == 0 and conf[i] <= lo)]
        gap = float(np.mean(conf[members]) - np.mean(correct[members])) if members else 0.0
        g = gammas[b]
        g2 = g * np.exp(lam * gap) if g > 0 else g * np.exp(-lam * gap)
        if abs(g2) < s_th:
            g2 = -s_th if g2 > 0 else s_th
        new.append(min(max(g2, g_min), g_max))
    return edges, np.array(new)


def test_update_matches_a_direct_loop_over_bins_and_samples() -> None:
    probs, labels = _validation(300, 6, 0, sharpness=3.0)
    loss = AdaFocalLoss(n_bins=10)
    gammas = [1.0] * 10
    for _ in range(3):  # several epochs: γ crosses into inverse focal and back
        edges, expected = _reference_update(probs, labels, gammas, 10)
        loss.update(probs, labels)
        np.testing.assert_allclose(loss.bin_edges.numpy(), edges, rtol=1e-12)
        np.testing.assert_allclose(loss.bin_gammas.numpy(), expected, rtol=1e-12)
        gammas = list(expected)
        probs, labels = _validation(300, 6, len(gammas) + int(expected.sum() * 7) % 97, 1.0)


def test_overconfidence_raises_gamma_and_underconfidence_switches_to_inverse() -> None:
    loss = AdaFocalLoss(n_bins=1, gamma_init=1.0)
    probs = torch.tensor([[0.9, 0.1]] * 10, dtype=torch.float64)
    labels = torch.tensor([0] * 5 + [1] * 5)  # confidence .9, accuracy .5: gap +0.4
    gaps = loss.update(probs, labels)
    np.testing.assert_allclose(gaps.numpy(), [0.4])
    np.testing.assert_allclose(loss.bin_gammas.numpy(), [np.exp(0.4)])
    loss = AdaFocalLoss(n_bins=1, gamma_init=0.25)
    probs = torch.tensor([[0.6, 0.4]] * 10, dtype=torch.float64)
    loss.update(probs, torch.zeros(10, dtype=torch.long))  # gap −0.4: 0.25·e^−0.4 < 0.2 → −0.2
    np.testing.assert_allclose(loss.bin_gammas.numpy(), [-0.2])


def test_forward_uses_the_bin_of_the_target_probability() -> None:
    loss = AdaFocalLoss(reduction="none")
    loss.set_bins([0.0, 0.3, 0.6, 1.0], [4.0, 0.5, -1.5])
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(40, 5, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 5, (40,), generator=g)
    log_p_y = torch.log_softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    p_y = log_p_y.exp()
    expected = []
    for p, lp in zip(p_y.tolist(), log_p_y.tolist(), strict=True):
        gamma = 4.0 if p <= 0.3 else (0.5 if p <= 0.6 else -1.5)
        base = 1 - p if gamma >= 0 else 1 + p
        expected.append(-(base ** abs(gamma)) * lp)
    torch.testing.assert_close(loss(logits, target), torch.tensor(expected, dtype=torch.float64))


def test_state_lives_in_the_state_dict() -> None:
    probs, labels = _validation(200, 4, 3, sharpness=4.0)
    trained = AdaFocalLoss()
    trained.update(probs, labels)
    restored = AdaFocalLoss()
    restored.load_state_dict(trained.state_dict())
    assert set(trained.state_dict()) == {"bin_edges", "bin_gammas"}
    logits = torch.randn(16, 4)
    target = torch.randint(0, 4, (16,))
    torch.testing.assert_close(restored(logits, target), trained(logits, target))


def test_update_accepts_numpy_logits_and_duplicated_edges() -> None:
    logits = np.zeros((50, 3))
    logits[:, 0] = 40.0  # every confidence is 1.0: all adaptive edges coincide (DFL repo: exit(0))
    labels = np.zeros(50, dtype=np.int64)
    loss = AdaFocalLoss()
    gaps = loss.update(logits, labels, from_logits=True)
    assert torch.isfinite(gaps).all() and torch.isfinite(loss.bin_gammas).all()
    loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))


def test_dfl_repo_variant_update_and_loss() -> None:
    gamma = torch.tensor([1.0, 0.1, 5.0], dtype=torch.float64)
    gap = torch.tensor([-2.0, 0.1, 5.0], dtype=torch.float64)
    torch.testing.assert_close(
        adafocal_gamma_update(gamma, gap, signed=False, gamma_max=20.0),
        torch.tensor([np.exp(-2.0), 0.1 * np.exp(0.1), 20.0], dtype=torch.float64),
    )
    loss = AdaFocalLoss(variant="dfl_repo", n_bins=1, gamma_init=1.0)
    probs = torch.tensor([[0.6, 0.4]] * 10, dtype=torch.float64)
    loss.update(probs, torch.zeros(10, dtype=torch.long))  # no switch: 1·e^−0.4 stays positive
    np.testing.assert_allclose(loss.bin_gammas.numpy(), [np.exp(-0.4)])


def test_ada_dual_focal_really_adapts_and_uses_the_margin() -> None:
    loss = AdaDualFocalLoss(n_bins=3, gamma_init=5.0, reduction="none")
    before = loss.bin_gammas.clone()
    probs, labels = _validation(300, 5, 4, sharpness=5.0)
    loss.update(probs, labels)
    assert not torch.equal(loss.bin_gammas, before)  # the DFL repository never updated it
    loss.set_bins([0.0, 0.2, 1.0], [6.0, 2.0])
    logits = torch.tensor([[2.0, 1.0, 0.0], [2.0, 1.9, 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 0])
    # margins: .665 − .245 = .42 → γ 2; .48 − .43 ≈ .05 → γ 6
    expected = torch.stack(
        [dual_focal_loss(logits[:1], target[:1], 2.0), dual_focal_loss(logits[1:], target[1:], 6.0)]
    )
    torch.testing.assert_close(loss(logits, target), expected)
