"""MbLS, MDCA, ACLS and BSCE-GRA: derivatives, properties against independent references, the
loss API (weight, ignore_index, reductions, N-D input, dtypes) and bad input.

References: ``F.cross_entropy`` (where a regulariser vanishes), float64 finite differences
(``gradcheck`` / ``gradgradcheck``), closed forms of the gradients and Hessians, and a per-class
Python loop for MDCA written from the paper's definition.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

from focalcal.losses import (
    ACLSLoss,
    BSCEGRALoss,
    MbLSLoss,
    MDCALoss,
    acls_loss,
    bsce_gra_loss,
    focal_loss,
    get_loss,
    label_smoothing_loss,
    mbls_loss,
    mdca_loss,
)
from focalcal.losses.mbls import scheduled_alpha
from focalcal.losses.mdca import mdca_penalty

# every new loss with settings whose regulariser is active on logits of scale ~3
ACTIVE = {
    "mbls": {"margin": 1.0, "alpha": 0.3},
    "mbls_official": {"margin": 1.0, "alpha": 0.3, "convention": "official"},
    "acls": {"margin": 1.0, "alpha": 0.3},
    "mdca": {"beta": 2.0},
    "ls_mdca": {"beta": 2.0, "eps": 0.2},
    "fl_mdca": {"beta": 2.0, "gamma": 2.0},
    "bsce_gra": {"gamma": 2.0, "norm": 2.0, "temperature": 1.5},
    "bsce": {"gamma": 2.0, "norm": 1.0},
}
# the same losses with the regulariser switched off: each is then cross-entropy
NEUTRAL = {
    "mbls": {"margin": 1e3},
    "mbls_official": {"margin": 1e3, "convention": "official"},
    "acls": {"margin": 1e3},
    "mdca": {"beta": 0.0},
    "ls_mdca": {"beta": 0.0, "eps": 0.0},
    "fl_mdca": {"beta": 0.0, "gamma": 0.0},
    "bsce_gra": {"gamma": 0.0, "norm": 2.0, "temperature": 0.5},
    "bsce": {"gamma": 0.0},
}
NAMES = list(ACTIVE)
# ACLS's gap hinge uses the detached maximum (by design, as BSCE-GRA's weight): with it, the
# gradient is not the derivative of the value, so finite differences check it with λ₂ = 0 and
# the closed form below checks the full gradient
DIFFERENTIABLE = {**ACTIVE, "acls": {**ACTIVE["acls"], "neg_lambda": 0.0}}
# the detached BSCE-GRA weight makes the gradient differ from the derivative of the value by
# design: its Hessian is checked against the closed form instead
SECOND_ORDER = [n for n in NAMES if n != "bsce_gra"]


def _loss(name: str, **kwargs) -> torch.nn.Module:
    registered = "mbls" if name == "mbls_official" else name
    return get_loss(registered, **kwargs)


def _logits(shape: tuple[int, ...], seed: int, scale: float = 3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).mul(scale).to(dtype)


def _targets(shape: tuple[int, ...], num_classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, num_classes, shape, generator=torch.Generator().manual_seed(seed + 1))


# -- derivatives ----------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", [n for n in NAMES if n != "bsce_gra"])
def test_gradcheck_with_weight_ignore_index_and_nd_input(name: str, reduction: str) -> None:
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    loss = _loss(name, weight=weight, reduction=reduction, **DIFFERENTIABLE[name])
    for shape in ((6, 4), (2, 4, 2, 2)):
        x = _logits(shape, seed=len(shape)).requires_grad_(True)
        t = _targets((shape[0], *shape[2:]), 4, seed=len(shape))
        t.view(-1)[1] = -100
        assert gradcheck(lambda z, t=t: loss(z, t), (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_gradgradcheck_second_derivatives_are_exact(name: str) -> None:
    x = _logits((5, 4), seed=3).requires_grad_(True)
    t = _targets((5,), 4, seed=3)
    t[2] = -100
    loss = _loss(name, weight=torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64),
                 **DIFFERENTIABLE[name])  # fmt: skip
    assert gradgradcheck(lambda z: loss(z, t), (x,), eps=1e-6, atol=1e-7)


def test_bsce_gra_gradient_and_hessian_are_the_detached_closed_forms() -> None:
    """∂ℓ/∂z = u (p − e_y) and ∂²ℓ/∂z² = u (diag p − p pᵀ), u = ‖e_y − softmax(z/T)‖_p^γ fixed."""
    gamma, norm, temperature = 2.5, 2.0, 1.7
    x = _logits((6, 5), seed=4).requires_grad_(True)
    t = _targets((6,), 5, seed=4)
    onehot = F.one_hot(t, 5).double()
    u = (onehot - torch.softmax(x.detach() / temperature, 1)).norm(p=norm, dim=1) ** gamma
    p = torch.softmax(x.detach(), 1)
    value = bsce_gra_loss(x, t, gamma, norm, temperature=temperature, reduction="sum")
    (grad,) = torch.autograd.grad(value, x, create_graph=True)
    torch.testing.assert_close(grad, u[:, None] * (p - onehot), rtol=1e-12, atol=1e-14)
    for row in range(6):
        (hess_row,) = torch.autograd.grad(grad[row].sum(), x, retain_graph=True)
        block = u[row] * (torch.diag(p[row]) - torch.outer(p[row], p[row]))
        torch.testing.assert_close(hess_row[row], block.sum(0), rtol=1e-10, atol=1e-13)
        assert (hess_row[torch.arange(6) != row] == 0).all()


def test_acls_gradient_is_the_closed_form_with_the_detached_maximum() -> None:
    """CE's gradient, + 2αλ₁ k relu(M − m) on the first maximum (k tied maxima), and
    − 2αλ₂ relu(M − z_c − m) / (C − 1) on every other class; over N for the mean."""
    a, m, l1, l2 = 0.3, 1.5, 1.2, 0.7
    x = _logits((6, 5), seed=20, scale=4.0)
    x[1, 4] = x[1, 2] = x[1].max() + 0.5  # two tied maxima
    t = _targets((6,), 5, seed=20)
    z = x.clone().requires_grad_(True)
    acls_loss(z, t, a, m, pos_lambda=l1, neg_lambda=l2).backward()
    top, first = x.max(dim=1)
    is_top = x == top[:, None]
    expected = torch.softmax(x, 1) - F.one_hot(t, 5)
    gap = torch.relu(top[:, None] - x - m) * ~is_top
    expected -= 2 * a * l2 * gap / 4
    pos = 2 * a * l1 * is_top.sum(1).double() * torch.relu(top - m)
    expected[torch.arange(6), first] += pos
    torch.testing.assert_close(z.grad, expected / 6, rtol=1e-12, atol=1e-15)


# -- closed forms and independent references ------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_neutral_settings_equal_weighted_cross_entropy(name: str, reduction: str) -> None:
    """Margin above every gap, β = 0, γ = 0: F.cross_entropy, weight and ignore_index included."""
    x = _logits((12, 5), seed=6, scale=4.0)
    t = _targets((12,), 5, seed=6)
    t[[0, 7]] = -100
    weight = torch.tensor([0.5, 1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    ours = _loss(name, weight=weight, reduction=reduction, **NEUTRAL[name])(x, t)
    torch.testing.assert_close(ours, F.cross_entropy(x, t, weight=weight, reduction=reduction))


def test_mbls_is_ce_plus_the_per_sample_hinge_sum() -> None:
    x = _logits((7, 6), seed=7)
    t = _targets((7,), 6, seed=7)
    hinge = sum(max(0.0, float(x[i].max() - x[i, c] - 2.0)) for i in range(7) for c in range(6))
    ce = F.cross_entropy(x, t, reduction="sum").item()
    np.testing.assert_allclose(mbls_loss(x, t, 2.0, 0.2, reduction="sum").item(),
                               ce + 0.2 * hinge, rtol=1e-12)  # fmt: skip
    official = mbls_loss(x, t, 2.0, 0.2, convention="official", reduction="sum").item()
    np.testing.assert_allclose(official, ce + 0.2 * hinge / 6, rtol=1e-12)


def test_acls_regulariser_by_explicit_loop() -> None:
    x = _logits((6, 5), seed=8, scale=5.0)
    x[0, 3] = x[0].max()  # a tied maximum: each tied maximum counts in pos
    t = _targets((6,), 5, seed=8)
    m, l1, l2, a = 2.0, 1.5, 0.3, 0.2
    expected = 0.0
    for i in range(6):
        top = float(x[i].max())
        for c in range(5):
            if float(x[i, c]) == top:
                expected += l1 * max(0.0, top - m) ** 2
            else:
                expected += l2 * max(0.0, top - float(x[i, c]) - m) ** 2 / 4
    ce = F.cross_entropy(x, t, reduction="sum").item()
    ours = acls_loss(x, t, a, m, pos_lambda=l1, neg_lambda=l2, reduction="sum").item()
    np.testing.assert_allclose(ours, ce + a * expected, rtol=1e-12)


def test_mdca_penalty_by_explicit_loop_over_classes() -> None:
    p = torch.softmax(_logits((10, 4), seed=9), 1)
    t = _targets((10,), 4, seed=9)
    valid = torch.ones(10, dtype=torch.bool)
    valid[[2, 5]] = False
    kept = valid.nonzero().squeeze(1).tolist()
    gaps = [abs(sum(float(p[i, c]) for i in kept) / 8 - sum(int(t[i]) == c for i in kept) / 8)
            for c in range(4)]  # fmt: skip
    np.testing.assert_allclose(mdca_penalty(p, t, valid).item(), sum(gaps) / 4, rtol=1e-12)
    assert mdca_penalty(p, t, torch.zeros(10, dtype=torch.bool)).item() == 0.0


@pytest.mark.parametrize(
    ("base", "reference"),
    [
        ("ce", lambda x, t, w: F.cross_entropy(x, t, weight=w)),
        ("focal", lambda x, t, w: focal_loss(x, t, 1.5, weight=w)),
        ("label_smoothing", lambda x, t, w: label_smoothing_loss(x, t, 0.2, weight=w)),
    ],
)
def test_mdca_beta_zero_is_the_base_and_beta_adds_the_batch_term(base: str, reference) -> None:
    x = _logits((9, 4), seed=10)
    t = _targets((9,), 4, seed=10)
    w = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)
    kw = {"base": base, "gamma": 1.5, "eps": 0.2, "weight": w}
    base_value = reference(x, t, w)
    torch.testing.assert_close(mdca_loss(x, t, 0.0, **kw), base_value)
    penalty = mdca_penalty(torch.softmax(x, 1), t, torch.ones(9, dtype=torch.bool))
    torch.testing.assert_close(mdca_loss(x, t, 3.0, **kw), base_value + 3.0 * penalty)
    total = w[t].sum()
    torch.testing.assert_close(
        mdca_loss(x, t, 3.0, reduction="sum", **kw), (base_value + 3.0 * penalty) * total
    )


def test_bsce_gra_closed_forms() -> None:
    """γ = 0: summed CE for any p and T; p = 1: 2^γ (1 − p_y)^γ CE (a detached focal factor)."""
    x = _logits((8, 6), seed=11)
    t = _targets((8,), 6, seed=11)
    ce = F.cross_entropy(x, t, reduction="none")
    p_y = torch.softmax(x, 1).gather(1, t[:, None]).squeeze(1)
    for norm, temperature in ((1.0, 1.0), (2.0, 0.5), (3.0, 4.0)):
        value = bsce_gra_loss(x, t, 0.0, norm, temperature=temperature, reduction="sum")
        torch.testing.assert_close(value, ce.sum(), rtol=1e-12, atol=0)
    items = bsce_gra_loss(x, t, 2.5, 1.0, reduction="none")
    torch.testing.assert_close(items, 2**2.5 * (1 - p_y) ** 2.5 * ce, rtol=1e-12, atol=1e-15)
    brier = ((torch.softmax(x, 1) - F.one_hot(t, 6)) ** 2).sum(1)
    items2 = bsce_gra_loss(x, t, 3.0, 2.0, reduction="none")
    torch.testing.assert_close(items2, brier**1.5 * ce, rtol=1e-12, atol=1e-15)
    # the non-detached variant has the same value and a different gradient
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    bsce_gra_loss(a, t, 2.0, reduction="sum").backward()
    bsce_gra_loss(b, t, 2.0, detach=False, reduction="sum").backward()
    assert (a.grad - b.grad).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("schedule", "mu", "cap", "step", "expected"),
    [
        ("", 0.0, 100.0, 100, [0.1, 0.1, 0.1]),
        ("add", 0.05, 100.0, 100, [0.1, 0.15, 0.2, 0.25]),
        ("add", 0.05, 0.18, 100, [0.1, 0.15, 0.18, 0.18]),
        ("multiply", 1.5, 0.2, 100, [0.1, 0.15, 0.2, 0.2]),
        ("multiply", 0.5, 100.0, 100, [0.1, 0.05, 0.025]),
        ("step", 2.0, 100.0, 2, [0.1, 0.1, 0.2, 0.2, 0.4]),
    ],
)
def test_alpha_schedules(schedule: str, mu: float, cap: float, step: int, expected) -> None:
    got = [scheduled_alpha(0.1, e, schedule, mu=mu, max_alpha=cap, step_size=step)
           for e in range(len(expected))]  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    loss = MbLSLoss(alpha=0.1, schedule=schedule, mu=mu, max_alpha=cap, step_size=step)
    loss.set_epoch(len(expected) - 1)
    loss.set_epoch(len(expected) - 1)  # idempotent: a function of the epoch
    assert loss.alpha == pytest.approx(expected[-1], rel=1e-12)


# -- the loss API ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_ignored_items_contribute_nothing(name: str) -> None:
    x = _logits((10, 4), seed=12).requires_grad_(True)
    t = _targets((10,), 4, seed=12)
    t[[1, 6]] = 255
    kept = t != 255
    for reduction in ("mean", "sum"):
        loss = _loss(name, ignore_index=255, reduction=reduction, **ACTIVE[name])
        value = loss(x, t)
        torch.testing.assert_close(value, loss(x[kept], t[kept]), rtol=1e-12, atol=1e-14)
        (grad,) = torch.autograd.grad(value, x)
        assert (grad[~kept] == 0).all()
    items = _loss(name, ignore_index=255, reduction="none", **ACTIVE[name])(x, t)
    assert (items[~kept] == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_reductions_and_weighted_mean(name: str) -> None:
    x = _logits((9, 5), seed=13)
    t = _targets((9,), 5, seed=13)
    t[2] = -100
    weight = torch.tensor([0.5, 1.0, 2.0, 0.0, 3.0], dtype=torch.float64)
    items = _loss(name, weight=weight, reduction="none", **ACTIVE[name])(x, t)
    total = _loss(name, weight=weight, reduction="sum", **ACTIVE[name])(x, t)
    mean = _loss(name, weight=weight, reduction="mean", **ACTIVE[name])(x, t)
    assert items.shape == t.shape and items[2] == 0
    torch.testing.assert_close(items.sum(), total, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(mean, total / weight[t[t != -100]].sum(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_all_ignored_batch_has_mean_zero_and_zero_gradient(name: str) -> None:
    x = _logits((4, 3), seed=14).requires_grad_(True)
    value = _loss(name, **ACTIVE[name])(x, torch.full((4,), -100))
    value.backward()
    assert value.item() == 0.0 and (x.grad == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_dense_input_equals_flattened_input(name: str) -> None:
    x = _logits((2, 4, 3, 2), seed=15)
    t = _targets((2, 3, 2), 4, seed=15)
    t[0, 1, 1] = -100
    flat_x, flat_t = x.movedim(1, -1).reshape(-1, 4), t.reshape(-1)
    for reduction in ("mean", "sum", "none"):
        loss = _loss(name, reduction=reduction, **ACTIVE[name])
        dense, flat = loss(x, t), loss(flat_x, flat_t)
        expected = flat.reshape(t.shape) if reduction == "none" else flat
        torch.testing.assert_close(dense, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_relabelling_classes_changes_nothing(name: str) -> None:
    x = _logits((11, 6), seed=16)
    t = _targets((11,), 6, seed=16)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    inverse = torch.argsort(perm)
    weight = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    for reduction in ("mean", "none"):
        original = _loss(name, weight=weight, reduction=reduction, **ACTIVE[name])(x, t)
        relabelled = _loss(name, weight=weight[perm], reduction=reduction, **ACTIVE[name])(
            x[:, perm], inverse[t]
        )
        torch.testing.assert_close(relabelled, original, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_gives_the_float32_value(name: str) -> None:
    x = _logits((8, 5), seed=17, dtype=torch.float32)
    t = _targets((8,), 5, seed=17)
    layer = torch.nn.Linear(5, 5)
    loss = _loss(name, **ACTIVE[name])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        value = loss(logits, t)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(logits.float(), t), rtol=1e-6, atol=1e-6)
    value.backward()
    assert torch.isfinite(layer.weight.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_inputs_are_computed_in_float32(name: str, dtype: torch.dtype) -> None:
    low = _logits((16, 7), seed=18, dtype=dtype).requires_grad_(True)
    t = _targets((16,), 7, seed=18)
    loss = _loss(name, **ACTIVE[name])
    value = loss(low, t)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, loss(low.detach().float(), t))
    value.backward()
    assert low.grad.dtype == dtype and torch.isfinite(low.grad.float()).all()


@pytest.mark.parametrize("name", NAMES)
def test_saturated_and_tied_logits_give_finite_values_and_gradients(name: str) -> None:
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [3.0, 3.0, 3.0], [0.0, -1e4, 1e4]],
                     requires_grad=True)  # fmt: skip
    value = _loss(name, **ACTIVE[name])(x, torch.tensor([0, 0, 1, 2]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_modules_repr_and_weight_buffer() -> None:
    loss = MbLSLoss(schedule="add", mu=0.05, weight=torch.ones(3))
    assert "weight" in dict(loss.named_buffers())
    assert "schedule='add'" in repr(loss) and "convention='paper'" in repr(loss)
    assert "base='focal', gamma=2" in repr(MDCALoss(base="focal", gamma=2.0))
    assert "pos_lambda=1" in repr(ACLSLoss()) and "detach=True" in repr(BSCEGRALoss())
    assert get_loss("bsce").detach is False and get_loss("ls_mdca").base == "label_smoothing"


# -- bad input ------------------------------------------------------------------------------
X = torch.randn(4, 3)
T = torch.tensor([0, 1, 2, 0])

BAD = [
    (lambda: mbls_loss(X, T, margin=-1.0), ValueError, "margin: expected a finite number >= 0"),
    (lambda: mbls_loss(X, T, alpha=-0.1), ValueError, "alpha: expected a finite number >= 0"),
    (lambda: mbls_loss(X, T, alpha="0.1"), TypeError, "alpha: expected a real number"),
    (lambda: mbls_loss(X, T, convention="x"), ValueError, r"convention: expected one of \["),
    (lambda: MbLSLoss(schedule="linear"), ValueError, "schedule: expected one of"),
    (lambda: MbLSLoss(schedule="multiply"), ValueError, "mu: expected a factor > 0"),
    (lambda: MbLSLoss(step_size=0), ValueError, "step_size: expected an integer >= 1"),
    (lambda: MbLSLoss().set_epoch(-1), ValueError, "epoch: expected an integer >= 0"),
    (lambda: MbLSLoss(margin=float("nan")), ValueError, "margin: expected a finite number"),
    (lambda: acls_loss(X, T, alpha=-1.0), ValueError, "alpha: expected a finite number >= 0"),
    (lambda: acls_loss(X, T, pos_lambda=-1.0), ValueError, "pos_lambda: expected"),
    (lambda: ACLSLoss(neg_lambda=-1.0), ValueError, "neg_lambda: expected"),
    (lambda: ACLSLoss(margin=-3.0), ValueError, "margin: expected a finite number >= 0"),
    (lambda: mdca_loss(X, T, beta=-1.0), ValueError, "beta: expected a finite number >= 0"),
    (lambda: mdca_loss(X, T, base="NLL"), ValueError, r"base: expected one of \['ce'"),
    (lambda: MDCALoss(gamma=-1.0), ValueError, "gamma: expected a finite number >= 0"),
    (lambda: mdca_loss(X, T, base="label_smoothing", eps=0.9), ValueError, "eps: expected eps"),
    (lambda: bsce_gra_loss(X, T, gamma=-1.0), ValueError, "gamma: expected a finite number >= 0"),
    (lambda: bsce_gra_loss(X, T, norm=0.5), ValueError, "norm: expected p >= 1"),
    (lambda: BSCEGRALoss(temperature=0.0), ValueError, "temperature: expected a finite number"),
    (lambda: BSCEGRALoss(reduction="avg"), ValueError, "reduction: expected one of"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), BAD)
def test_bad_hyper_parameters_raise_clear_errors(call, error, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call()


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_the_shared_errors(name: str) -> None:
    loss = _loss(name, **ACTIVE[name])
    cases = [
        ((torch.randn(3), T), ValueError, r"logits: expected shape \(N, C\)"),
        ((X, torch.tensor([0, 1])), ValueError, r"target: expected shape \(4,\)"),
        ((X, T.float()), TypeError, "target: expected integer class indices"),
        ((X, torch.tensor([0, 1, 3, 0])), ValueError, r"target: .*\[0, 3\)"),
        ((torch.tensor([[0.0, np.nan]]), torch.tensor([0])), ValueError, "logits: expected finite"),
        ((X.numpy(), T), TypeError, "logits: expected a torch.Tensor"),
        ((torch.zeros(0, 3), T[:0]), ValueError, "logits: expected a non-empty batch"),
    ]
    for args, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            loss(*args)
    with pytest.raises(ValueError, match=r"weight: expected shape \(3,\)"):
        _loss(name, weight=torch.ones(4), **ACTIVE[name])(X, T)


@pytest.mark.parametrize(
    "module", ["focalcal.losses.mbls", "focalcal.losses.mdca", "focalcal.losses.acls",
               "focalcal.losses.bsce_gra"],
)  # fmt: skip
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_user_guide_snippets_run() -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "guide" / "recent-losses.md"
    blocks = re.findall(r"```python\n(.*?)```", guide.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 4
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(guide), "exec"), namespace)
