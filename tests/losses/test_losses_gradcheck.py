"""float64 ``gradcheck`` (finite differences) of every loss, including the hand-written backward
of the fused focal-family kernel on ties, N-D input, weights, ignore_index and reductions
(``fast_mode``: a random projection of the Jacobian, to keep CI fast), and ``gradgradcheck`` of
the same cases: second derivatives are exact (more in test_losses_second_derivatives.py)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from focalcal.losses import AdaDualFocalLoss, AdaFocalLoss, get_loss
from focalcal.losses.gamma import LambertWGamma
from loss_contract import CONTRACT_LOSSES

NAMES = list(CONTRACT_LOSSES)


def _inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    return logits, target


#: first derivatives, and second derivatives (finite differences of the gradient)
CHECKS = [gradcheck, gradgradcheck]


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_every_loss(name: str, reduction: str, check) -> None:
    logits, target = _inputs((5, 4))
    target[1] = -100
    weight = torch.tensor([0.5, 1.0, 2.0, 1.5], dtype=torch.float64)
    loss = get_loss(name, weight=weight, reduction=reduction)
    assert check(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize(
    "name", ["focal", "dual_focal", "dual_flsd53", "inverse_focal", "mmce_weighted"]
)
def test_gradcheck_dense_input(name: str, check) -> None:
    logits, target = _inputs((2, 3, 2, 2), seed=1)
    loss = get_loss(name)
    assert check(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0, "flsd53"])
def test_gradcheck_dual_focal_gammas_and_ties_away_from_kinks(gamma, check) -> None:
    # [2, 0, 0, -1] t=0 has tied candidates; gradcheck perturbs one logit at a time, which splits
    # the tie the same way for +eps and -eps only for the lower index, so shift the tie apart.
    logits = torch.tensor([[2.0, 0.0, 0.3, -1.0], [1.0, 1.5, 0.0, -1.0], [0.1, 0.2, 0.3, 0.4]])
    logits = logits.double().requires_grad_(True)
    target = torch.tensor([0, 0, 3])
    loss = get_loss("dual_focal", gamma=gamma, reduction="sum")
    assert check(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("check", CHECKS)
def test_gradcheck_signed_adafocal_with_inverse_bins(check) -> None:
    logits, target = _inputs((8, 3), seed=2)
    loss = AdaFocalLoss(reduction="sum")
    loss.set_bins([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], [3.0, 1.0, 0.2, -0.2, -1.5])
    assert check(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-7, fast_mode=True)
    dual = AdaDualFocalLoss(reduction="sum")
    dual.set_bins([0.0, 0.5, 1.0], [4.0, 1.0])
    assert check(lambda x: dual(x, target), (logits,), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.usefixtures("cpu_kernel")
def test_tied_candidates_send_the_gradient_to_the_lowest_index() -> None:
    """[2, 0, 0, −1], target 0: the official gradient (CPU topk) is [−0.0791, 0.0448, 0.0251, 0.0092]."""
    logits = torch.tensor([[2.0, 0.0, 0.0, -1.0]], requires_grad=True)
    get_loss("dual_focal", gamma=2.0, reduction="sum")(logits, torch.tensor([0])).backward()
    torch.testing.assert_close(
        logits.grad, torch.tensor([[-0.0791, 0.0448, 0.0251, 0.0092]]), atol=1e-4, rtol=0
    )


@pytest.mark.usefixtures("cpu_kernel")
def test_sample_dependent_gamma_is_detached() -> None:
    """A continuous γ(p) (Lambert-W) gets no gradient: same gradient as with γ frozen."""
    logits, target = _inputs((6, 5), seed=3)
    policy = LambertWGamma(gamma_min=1.0, gamma_max=6.0)
    value = get_loss("focal", gamma=policy, reduction="sum")(logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    x = logits.detach().clone().requires_grad_(True)
    log_p_y = torch.log_softmax(x, 1).gather(1, target[:, None]).squeeze(1)
    frozen = policy(log_p_y.detach().exp())
    reference = (-((1 - log_p_y.exp()) ** frozen) * log_p_y).sum()
    (expected,) = torch.autograd.grad(reference, x)
    torch.testing.assert_close(value, reference)
    torch.testing.assert_close(grad, expected)
