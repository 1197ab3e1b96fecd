"""Properties of the losses against independent references written here.

References: ``F.cross_entropy`` (γ = 0, weight/ignore_index/reduction semantics), the per-row
definitions of focal / dual focal / inverse focal / AdaFocal in :mod:`focalcal.losses.reference`
with plain float64 autograd (the candidate set of p_j chosen by an explicit loop over classes),
closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from focalcal.losses import (
    BrierLoss,
    DualFocalLoss,
    FocalLoss,
    InverseFocalLoss,
    brier_loss,
    dual_focal_loss,
    focal_loss,
    get_loss,
    inverse_focal_loss,
    label_smoothing_loss,
)
from focalcal.losses.reference import dual_focal_row, focal_row, inverse_focal_row, row_losses
from loss_contract import CONTRACT_LOSSES, adversarial_runner_up_rows

SETTINGS = settings(max_examples=15, deadline=None)
ALL_NAMES = list(CONTRACT_LOSSES)
ROWS = {"focal": focal_row, "dual": dual_focal_row, "inverse": inverse_focal_row}


def reference_row_losses(
    logits: torch.Tensor, target: torch.Tensor, kind: str, gamma: float
) -> torch.Tensor:
    """Per-row reference in float64 autograd: focal, dual focal, inverse focal."""
    return row_losses(ROWS[kind], logits, target, gamma)


def _logits(n: int, c: int, seed: int, scale: float = 3.0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(dtype)


def _targets(n: int, c: int, seed: int) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed + 1))


shapes = st.tuples(st.integers(1, 12), st.integers(2, 9), st.integers(0, 10_000))


@SETTINGS
@given(shapes, st.sampled_from(["focal", "dual", "inverse"]), st.sampled_from([0.5, 1.0, 2.0, 5.0]))
def test_value_and_gradient_match_per_row_reference(shape, kind: str, gamma: float) -> None:
    n, c, seed = shape
    logits = _logits(n, c, seed)
    target = _targets(n, c, seed)
    fn = {"focal": focal_loss, "dual": dual_focal_loss, "inverse": inverse_focal_loss}[kind]
    x = logits.clone().requires_grad_(True)
    ours = fn(x, target, gamma, reduction="sum")
    ours.backward()
    x_ref = logits.clone().requires_grad_(True)
    ref = reference_row_losses(x_ref, target, kind, gamma).sum()
    ref.backward()
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(
    shapes,
    st.sampled_from(["mean", "sum", "none"]),
    st.booleans(),
    st.sampled_from([-100, 0, 3]),
)
def test_gamma_zero_is_cross_entropy_with_torch_semantics(
    shape, reduction: str, weighted: bool, ignore_index: int
) -> None:
    n, c, seed = shape
    logits = _logits(n, c, seed)
    target = _targets(n, c, seed)
    target[::3] = ignore_index if ignore_index < 0 else target[::3]
    weight = torch.rand(c, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) + 0.1
    w = weight if weighted else None
    if reduction == "mean" and not bool((target != ignore_index).any()):
        return  # torch gives NaN here, focalcal 0 (tested separately)
    kw = {"weight": w, "ignore_index": ignore_index, "reduction": reduction}
    expected_x = logits.clone().requires_grad_(True)
    expected = F.cross_entropy(expected_x, target, **kw)
    for loss in (
        lambda x: focal_loss(x, target, 0.0, **kw),
        lambda x: dual_focal_loss(x, target, 0.0, **kw),
        lambda x: inverse_focal_loss(x, target, 0.0, **kw),
        lambda x: get_loss("ce", **kw)(x, target),
        lambda x: label_smoothing_loss(x, target, 0.0, **kw),
    ):
        x = logits.clone().requires_grad_(True)
        value = loss(x)
        torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)
        g = torch.randn_like(value)
        (value * g).sum().backward()
        (gx,) = torch.autograd.grad((expected * g).sum(), expected_x, retain_graph=True)
        torch.testing.assert_close(x.grad, gx, rtol=1e-9, atol=1e-12)


def test_all_ignored_mean_is_zero_not_nan() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.full((4,), -100)
    for name in ALL_NAMES:
        value = get_loss(name)(logits, target)
        assert value.item() == 0.0, name
        value.backward()
        assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all(), name
        logits.grad = None


@SETTINGS
@given(shapes, st.sampled_from([1.0, 2.0, 3.5]))
def test_dfl_equals_fl_when_target_is_the_smallest(shape, gamma: float) -> None:
    n, c, seed = shape
    logits = _logits(n, c, seed)
    target = logits.argmin(dim=1)
    x1 = logits.clone().requires_grad_(True)
    x2 = logits.clone().requires_grad_(True)
    dfl = dual_focal_loss(x1, target, gamma, reduction="none")
    fl = focal_loss(x2, target, gamma, reduction="none")
    torch.testing.assert_close(dfl, fl, rtol=1e-12, atol=0)
    dfl.sum().backward()
    fl.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-15)


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 10_000), st.sampled_from([0.5, 1.0, 2.0, 4.0]))
def test_binary_dfl_is_two_to_gamma_fl_when_correct(n: int, seed: int, gamma: float) -> None:
    logits = _logits(n, 2, seed)
    target = _targets(n, 2, seed)
    dfl = dual_focal_loss(logits, target, gamma, reduction="none")
    fl = focal_loss(logits, target, gamma, reduction="none")
    p_y = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    expected = torch.where(p_y > 0.5, 2.0**gamma * fl, fl)
    torch.testing.assert_close(dfl, expected, rtol=1e-10, atol=1e-14)


def test_binary_tie_at_one_half_is_fl() -> None:
    logits = torch.tensor([[3.0, 3.0]])
    target = torch.tensor([1])
    torch.testing.assert_close(
        dual_focal_loss(logits, target, 2.0), focal_loss(logits, target, 2.0)
    )


@SETTINGS
@given(shapes, st.sampled_from(ALL_NAMES))
def test_relabelling_classes_changes_nothing(shape, name: str) -> None:
    n, c, seed = shape
    logits = _logits(n, c, seed).float()
    target = _targets(n, c, seed)
    perm = torch.randperm(c, generator=torch.Generator().manual_seed(seed))
    inverse = torch.argsort(perm)
    loss = get_loss(name, reduction="none" if "mmce" not in name else "mean")
    x1 = logits.clone().requires_grad_(True)
    x2 = logits[:, perm].clone().requires_grad_(True)
    v1 = loss(x1, target)
    v2 = loss(x2, inverse[target])
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-6)
    v1.sum().backward()
    v2.sum().backward()
    torch.testing.assert_close(x1.grad[:, perm], x2.grad, rtol=1e-4, atol=1e-6)


@SETTINGS
@given(shapes, st.sampled_from(ALL_NAMES), st.sampled_from(["mean", "sum"]))
def test_ignored_items_contribute_nothing(shape, name: str, reduction: str) -> None:
    n, c, seed = shape
    logits = _logits(n + 2, c, seed).float()
    target = _targets(n + 2, c, seed)
    target[-2:] = -100
    loss = get_loss(name, reduction=reduction)
    x = logits.clone().requires_grad_(True)
    value = loss(x, target)
    kept = loss(logits[:n], target[:n])
    torch.testing.assert_close(value, kept, rtol=1e-5, atol=1e-6)
    value.backward()
    assert (x.grad[-2:] == 0).all()


@SETTINGS
@given(
    st.tuples(st.integers(1, 3), st.integers(2, 6), st.integers(1, 4), st.integers(1, 4)),
    st.integers(0, 10_000),
    st.sampled_from(ALL_NAMES),
)
def test_dense_input_equals_flattened_input(shape, seed: int, name: str) -> None:
    n, c, h, w = shape
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g) * 3
    target = torch.randint(0, c, (n, h, w), generator=g)
    target[0, 0, 0] = 255
    flat_x = logits.movedim(1, -1).reshape(-1, c)
    flat_t = target.reshape(-1)
    for reduction in ("mean", "sum", "none"):
        loss = get_loss(name, reduction=reduction, ignore_index=255)
        dense = loss(logits, target)
        flat = loss(flat_x, flat_t)
        expected = flat.reshape(n, h, w) if reduction == "none" else flat
        torch.testing.assert_close(dense, expected, rtol=1e-5, atol=1e-6)
        if reduction == "none":
            assert dense.shape == target.shape


def test_none_reduction_is_the_weighted_items_and_sums_to_sum() -> None:
    logits = _logits(9, 5, 0)
    target = _targets(9, 5, 0)
    target[2] = -100
    weight = torch.tensor([0.5, 1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    for name in ALL_NAMES:
        items = get_loss(name, weight=weight, reduction="none")(logits, target)
        total = get_loss(name, weight=weight, reduction="sum")(logits, target)
        mean = get_loss(name, weight=weight, reduction="mean")(logits, target)
        torch.testing.assert_close(items.sum(), total, rtol=1e-10, atol=1e-12)
        denom = weight[target.clamp_min(0)][target != -100].sum()
        torch.testing.assert_close(mean, total / denom, rtol=1e-10, atol=1e-12)
        assert items[2] == 0


def test_brier_closed_form_and_weight() -> None:
    logits = _logits(6, 4, 1)
    target = _targets(6, 4, 1)
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(target, 4).double()
    expected = ((p - onehot) ** 2).sum(1)
    torch.testing.assert_close(brier_loss(logits, target, reduction="none"), expected)
    torch.testing.assert_close(BrierLoss()(logits, target), expected.mean())


def test_label_smoothing_conventions_closed_form() -> None:
    logits = _logits(5, 4, 2)
    target = _targets(5, 4, 2)
    log_p = torch.log_softmax(logits, 1)
    eps, c = 0.1, 4
    q_paper = torch.full((5, 4), eps / (c - 1), dtype=torch.float64)
    q_paper.scatter_(1, target[:, None], 1 - eps)
    q_torch = torch.full((5, 4), eps / c, dtype=torch.float64)
    q_torch.scatter_(1, target[:, None], 1 - eps + eps / c)
    for convention, q in (("paper", q_paper), ("torch", q_torch)):
        value = label_smoothing_loss(logits, target, eps, convention=convention, reduction="sum")
        torch.testing.assert_close(value, -(q * log_p).sum())
    torch.testing.assert_close(
        label_smoothing_loss(logits, target, eps, convention="torch"),
        F.cross_entropy(logits, target, label_smoothing=eps),
    )


@pytest.mark.parametrize("name", ALL_NAMES)
def test_saturated_logits_give_finite_values_and_gradients(name: str) -> None:
    logits = torch.tensor(
        [[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4], [0.0, -1e4, 1e4]],
        requires_grad=True,
    )
    target = torch.tensor([0, 0, 1, 2])
    for gamma_kw in (
        ({}, {"gamma": 0.5}) if name in ("focal", "dual_focal", "inverse_focal") else ({},)
    ):
        value = get_loss(name, **gamma_kw)(logits, target)
        value.backward()
        assert torch.isfinite(value), name
        assert torch.isfinite(logits.grad).all(), name
        logits.grad = None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["focal", "dual_focal", "flsd53", "brier", "label_smoothing"])
def test_low_precision_inputs_are_computed_in_float32(dtype: torch.dtype, name: str) -> None:
    logits32 = _logits(16, 7, 3).float()
    target = _targets(16, 7, 3)
    low = logits32.to(dtype).requires_grad_(True)
    value = get_loss(name)(low, target)
    assert value.dtype == torch.float32
    expected = get_loss(name)(low.detach().float(), target)
    torch.testing.assert_close(value, expected)  # same numbers as fp32 on the rounded logits
    value.backward()
    assert low.grad.dtype == dtype and torch.isfinite(low.grad.float()).all()


def test_autocast_keeps_float32() -> None:
    x = _logits(8, 5, 4).float()
    target = _targets(8, 5, 4)
    layer = torch.nn.Linear(5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        for name in ALL_NAMES:
            value = get_loss(name)(logits, target)
            assert value.dtype == torch.float32, name
            expected = get_loss(name)(logits.float(), target)
            torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6)
        # the functional form with keyword arguments is protected too
        by_keyword = dual_focal_loss(logits=logits, target=target, gamma=3.0)
        assert by_keyword.dtype == torch.float32
        torch.testing.assert_close(by_keyword, dual_focal_loss(logits.float(), target, 3.0))


def test_modules_hold_weight_as_buffer_and_expose_set_epoch() -> None:
    loss = FocalLoss("flsc531", weight=torch.ones(3))
    assert "weight" in dict(loss.named_buffers())
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    target = torch.tensor([1])
    loss.set_epoch(0)
    v5 = loss(logits, target)
    loss.set_epoch(260)
    v1 = loss(logits, target)
    torch.testing.assert_close(v5, focal_loss(logits, target, 5.0))
    torch.testing.assert_close(v1, focal_loss(logits, target, 1.0))
    assert hasattr(DualFocalLoss(), "set_epoch") and hasattr(InverseFocalLoss(), "set_epoch")
    assert not np.isnan(v1.item())


def _vectorised_reference(logits: torch.Tensor, target: torch.Tensor, gamma: float, dual: bool):
    """Plain-autograd mean focal / dual focal loss over (N, C, d1, ...) (no ties in random data)."""
    z = logits.movedim(1, -1).reshape(-1, logits.shape[1])
    y = target.reshape(-1, 1)
    log_p = torch.log_softmax(z, dim=1)
    log_p_y = log_p.gather(1, y)
    base = 1 - log_p_y.exp()
    if dual:
        below = torch.where(log_p < log_p_y, log_p, torch.full_like(log_p, -torch.inf))
        base = base + below.max(dim=1, keepdim=True).values.exp()
    return (-(base**gamma) * log_p_y).mean()


@pytest.mark.parametrize("dual", [False, True])
def test_large_inputs_take_the_in_place_backward_and_match_autograd(
    dual: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2^20 class scores: the backward writes the gradient into its own buffer on CPU (observed
    # by passing the real kernel's calls through)
    real_kernel = torch._log_softmax_backward_data
    calls: list[bool] = []

    def observed(*args, **kwargs):
        calls.append("out" in kwargs)
        return real_kernel(*args, **kwargs)

    monkeypatch.setattr(torch, "_log_softmax_backward_data", observed)
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 8, 256, 256, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 8, (2, 256, 256), generator=g)
    assert logits.numel() >= 1 << 20
    fn = dual_focal_loss if dual else focal_loss
    x = logits.clone().requires_grad_(True)
    ours = fn(x, target, 2.0)
    ours.backward(retain_graph=True)
    first = x.grad.clone()
    ours.backward()  # a second backward must not overwrite the gradient autograd kept
    assert calls == [True, True]
    x_ref = logits.clone().requires_grad_(True)
    ref = _vectorised_reference(x_ref, target, 2.0, dual)
    ref.backward()
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(first, x_ref.grad, rtol=1e-8, atol=1e-15)
    torch.testing.assert_close(x.grad, 2 * x_ref.grad, rtol=1e-8, atol=1e-15)


def _brute_force_runner_up(log_p: torch.Tensor, target: torch.Tensor) -> list[tuple[float, int]]:
    """(log p_j, j) per row by a loop: the largest log-probability strictly below the target's,
    lowest index among equal ones; (-inf, -1) when there is none."""
    out = []
    for row, y in zip(log_p.tolist(), target.tolist(), strict=True):
        below = [(v, -c) for c, v in enumerate(row) if v < row[y]]
        best = max(below) if below else (-float("inf"), 1)
        out.append((best[0], -best[1]))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_runner_up_search_is_exact_on_adversarial_rows(dtype: torch.dtype) -> None:
    """Neighbours one ulp away from the target's log-probability (both sides), ties and one-ulp
    gaps among the others, p_y near 1 (where ulps are tiny), saturated and huge finite logits,
    the target smallest, all tied."""
    from focalcal.losses._kernel import _runner_up_index, _runner_up_value

    logits, target = adversarial_runner_up_rows(dtype)
    log_p = torch.log_softmax(logits, dim=1)
    log_p_j, masked = _runner_up_value(log_p, log_p.gather(1, target.unsqueeze(1)))
    index_j = _runner_up_index(masked, log_p_j)
    for i, (value, index) in enumerate(_brute_force_runner_up(log_p, target)):
        if value > -float("inf") and torch.exp(log_p[i, index]) > 0:
            assert log_p_j[i, 0].item() == value, (i, logits[i], target[i])
            assert index_j[i, 0].item() == index, (i, logits[i], target[i])
        else:  # no candidate, or every candidate has p = 0: p_j is 0 either way
            assert torch.exp(log_p_j[i, 0]).item() == 0.0, (i, logits[i], target[i])
            assert 0 <= index_j[i, 0].item() < logits.shape[1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_next_below_matches_nextafter_on_negative_normal_floats(dtype: torch.dtype) -> None:
    """The one-``add`` replacement of ``nextafter(x, -inf)`` (wrong on MPS in torch 2.2–2.3)."""
    from focalcal.losses._kernel import _next_below

    g = torch.Generator().manual_seed(3)
    powers = torch.tensor([2.0**k for k in range(-20, 60)], dtype=dtype)
    neg_inf = torch.tensor(-torch.inf, dtype=dtype)
    x = torch.cat(
        [
            -torch.rand(20_000, generator=g, dtype=torch.float64).to(dtype) * 50 - 0.3,
            -torch.exp(torch.randn(20_000, generator=g, dtype=torch.float64) * 8).to(dtype),
            -powers,  # bottom of each binade
            torch.nextafter(-powers, torch.zeros_like(powers)),  # top of the binade below
            torch.nextafter(-powers, -torch.full_like(powers, torch.inf)),
        ]
    )
    x = x[x < -torch.finfo(dtype).tiny]
    torch.testing.assert_close(_next_below(x), torch.nextafter(x, neg_inf), rtol=0, atol=0)
