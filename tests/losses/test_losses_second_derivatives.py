"""Second derivatives through every loss are exact (gradient penalties, sharpness-aware training).

References (besides ``gradgradcheck`` of every loss in test_losses_gradcheck.py): float64
``gradgradcheck`` (finite differences of the gradient), ``F.cross_entropy``
at γ = 0, finite differences of the penalty |∇L|² computed with the first-order gradient only,
and the per-row definitions of :mod:`focalcal.losses.reference` in plain autograd.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradgradcheck

from focalcal.losses import AdaDualFocalLoss, AdaFocalLoss, get_loss
from focalcal.losses.reference import (
    ada_dual_focal_row,
    adafocal_row,
    dual_focal_row,
    focal_family_items,
    focal_row,
    inverse_focal_row,
    row_losses,
)
from loss_contract import CONTRACT_LOSSES, adversarial_runner_up_rows

NAMES = list(CONTRACT_LOSSES)
FOCAL_FAMILY = ["focal", "flsd53", "dual_focal", "dual_flsd53", "inverse_focal"]


def _inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return logits, target


def _gradient(loss, logits: torch.Tensor, target: torch.Tensor, create_graph: bool):
    (grad,) = torch.autograd.grad(loss(logits, target), logits, create_graph=create_graph)
    return grad


@pytest.mark.usefixtures("cpu_kernel")
def test_gradgradcheck_lambertw_gamma() -> None:
    """A continuous γ(p), detached: its second derivative is that of γ frozen."""
    logits, target = _inputs((8, 3), seed=2)
    loss = get_loss("focal", gamma="lambertw", reduction="sum")
    assert gradgradcheck(lambda x: loss(x, target), (logits,), atol=1e-6, fast_mode=True)


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gamma_zero_hessian_is_cross_entropys(reduction: str) -> None:
    """The gradient penalty's gradient, ∇(|∇L|²) = 2 H ∇L, equals cross-entropy's at γ = 0,
    with class weights and ignored items."""
    logits, target = _inputs((7, 5), seed=4)
    target[2] = -100
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.7], dtype=torch.float64)
    upstream = torch.linspace(0.5, 1.5, 7, dtype=torch.float64) if reduction == "none" else 1.0

    def penalty_gradient(loss) -> torch.Tensor:
        x = logits.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((loss(x) * upstream).sum(), x, create_graph=True)
        (grad**2).sum().backward()
        return x.grad

    kw = {"weight": weight, "reduction": reduction}
    expected = penalty_gradient(lambda x: F.cross_entropy(x, target, **kw))
    for name in ("focal", "dual_focal", "inverse_focal"):
        loss = get_loss(name, gamma=0.0, **kw)
        ours = penalty_gradient(lambda x, loss=loss: loss(x, target))
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("name", NAMES)
def test_penalty_gradient_matches_finite_differences_of_the_first_order_gradient(name) -> None:
    """P(x) = |∇L(x)|² evaluated with the first-order backward only; the autograd gradient of
    P (through the second derivative) matches its central differences along random directions."""
    logits, target = _inputs((6, 4), seed=5)
    loss = get_loss(name, reduction="sum")

    def penalty(x: torch.Tensor) -> float:
        x = x.detach().clone().requires_grad_(True)
        return float((_gradient(loss, x, target, create_graph=False) ** 2).sum())

    x = logits.detach().clone().requires_grad_(True)
    (_gradient(loss, x, target, create_graph=True) ** 2).sum().backward()
    g = torch.Generator().manual_seed(6)
    for _ in range(3):
        v = torch.randn(logits.shape, generator=g, dtype=torch.float64)
        eps = 1e-6
        numeric = (penalty(logits + eps * v) - penalty(logits - eps * v)) / (2 * eps)
        torch.testing.assert_close(float((x.grad * v).sum()), numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("name", [*FOCAL_FAMILY, "adafocal", "ada_dual_focal"])
def test_differentiable_gradient_equals_the_first_order_gradient(name: str) -> None:
    """With ``create_graph=True`` the gradient itself is the same numbers (and now has a
    ``grad_fn``)."""
    logits, target = _inputs((9, 6, 3), seed=7)
    target[0, 0] = -100
    loss = get_loss(name)
    fast = _gradient(loss, logits, target, create_graph=False)
    exact = _gradient(loss, logits, target, create_graph=True)
    assert fast.grad_fn is None and exact.grad_fn is not None
    torch.testing.assert_close(exact, fast, rtol=1e-10, atol=1e-15)


@pytest.mark.usefixtures("cpu_kernel")
def test_gradient_penalty_training_step_matches_the_per_row_definitions() -> None:
    """One step of L + λ|∇_z L|² through a linear model: the parameters' gradient equals the one
    of the per-row definitions in plain autograd, and differs from the step without penalty."""
    g = torch.Generator().manual_seed(8)
    features = torch.randn(12, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (12,), generator=g)
    edges, gammas = [0.0, 0.3, 0.6, 1.0], [3.0, 1.0, -0.5]
    adafocal = AdaFocalLoss(reduction="sum")
    adafocal.set_bins(edges, gammas)
    ada_dual = AdaDualFocalLoss(reduction="sum")
    ada_dual.set_bins(edges, [4.0, 2.0, 0.5])
    cases = [
        (get_loss("focal", gamma=2.0, reduction="sum"), focal_row, (2.0,)),
        (get_loss("dual_flsd53", reduction="sum"), dual_focal_row, (get_loss("flsd53").gamma,)),
        (get_loss("inverse_focal", gamma=1.5, reduction="sum"), inverse_focal_row, (1.5,)),
        (adafocal, adafocal_row, (edges, gammas)),
        (ada_dual, ada_dual_focal_row, (edges, [4.0, 2.0, 0.5])),
    ]
    weight0 = torch.randn(4, 5, generator=g, dtype=torch.float64)

    def step(objective, penalty: float) -> torch.Tensor:
        weight = weight0.clone().requires_grad_(True)
        logits = features @ weight.t()
        value = objective(logits)
        (grad,) = torch.autograd.grad(value, logits, create_graph=True)
        (value + penalty * (grad**2).sum()).backward()
        return weight.grad

    for loss, row, args in cases:
        ours = step(lambda z, loss=loss: loss(z, target), 0.5)
        reference = step(lambda z, row=row, args=args: row_losses(row, z, target, *args).sum(), 0.5)
        torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-12)
        without = step(lambda z, loss=loss: loss(z, target), 0.0)
        assert not torch.allclose(ours, without)  # the penalty is not dropped


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_definition_equals_the_per_row_definitions(dtype: torch.dtype) -> None:
    """:func:`focal_family_items` (used for second derivatives) against the row definitions on
    rows with ties, one-ulp neighbours, p_y near 1 and saturated logits: values and gradients."""
    logits, target = adversarial_runner_up_rows(torch.float64)
    logits = logits.clamp(-50, 50).to(dtype)  # the row definitions use 1 - p_y, not expm1
    index = target.unsqueeze(1)
    cases = [
        (focal_row, lambda p_y, p_j: (2.0, False), False),
        (inverse_focal_row, lambda p_y, p_j: (2.0, True), False),
        (dual_focal_row, lambda p_y, p_j: (2.0, False), True),
    ]
    tol = {"rtol": 1e-9, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    for row, gamma_fn, runner_up in cases:
        x = logits.clone().requires_grad_(True)
        batched = focal_family_items(x, index, gamma_fn, runner_up=runner_up).squeeze(1)
        batched.sum().backward()
        y = logits.clone().requires_grad_(True)
        rows = row_losses(row, y, target, 2.0)
        rows.sum().backward()
        torch.testing.assert_close(batched, rows, **tol)
        torch.testing.assert_close(x.grad, y.grad, **tol)
