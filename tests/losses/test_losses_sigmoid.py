"""Sigmoid focal loss against torchvision.ops.sigmoid_focal_loss: values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

torchvision = pytest.importorskip("torchvision")
from torchvision.ops import sigmoid_focal_loss as tv_sigmoid_focal_loss  # noqa: E402

from focalcal.losses import SigmoidFocalLoss, sigmoid_focal_loss  # noqa: E402


def _inputs(dtype=torch.float64, soft=False):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(16, 5, generator=g, dtype=dtype) * 3).requires_grad_()
    target = torch.rand(16, 5, generator=g, dtype=dtype)
    return logits, target if soft else (target > 0.6).to(dtype)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.9, 3.5)])
@pytest.mark.parametrize("soft", [False, True])
def test_equals_torchvision(reduction, alpha, gamma, soft) -> None:
    logits, target = _inputs(soft=soft)
    ours = sigmoid_focal_loss(logits, target, alpha, gamma, reduction)
    theirs = tv_sigmoid_focal_loss(logits, target, alpha, gamma, reduction)
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    g_ours = torch.autograd.grad(ours.sum(), logits)[0]
    g_theirs = torch.autograd.grad(theirs.sum(), logits)[0]
    assert torch.allclose(g_ours, g_theirs, rtol=1e-10, atol=1e-14)


def test_defaults_and_module_equal_torchvision() -> None:
    logits, target = _inputs(torch.float32)
    assert torch.allclose(sigmoid_focal_loss(logits, target), tv_sigmoid_focal_loss(logits, target))
    module = SigmoidFocalLoss()  # reduction="mean" as every loss module
    assert torch.allclose(module(logits, target.long()),
                          tv_sigmoid_focal_loss(logits, target, reduction="mean"))  # fmt: skip


def test_saturated_logits_keep_the_tiny_loss_that_one_minus_p_t_would_cancel() -> None:
    logits = torch.tensor([[40.0, -40.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0]])
    loss = sigmoid_focal_loss(logits, target, alpha=0.25, gamma=0.5, reduction="sum")
    (grad,) = torch.autograd.grad(loss, logits)
    # both entries: log(1 + e^-40) · σ(-40)^0.5, weighted 0.25 and 0.75 (float32 1 - σ(40) is 0)
    term = math.log1p(math.exp(-40.0)) * (1.0 / (1.0 + math.exp(40.0))) ** 0.5
    assert loss.item() == pytest.approx(term, rel=1e-5)
    assert torch.isfinite(grad).all()


def test_gradcheck() -> None:
    logits, target = _inputs(soft=True)
    assert torch.autograd.gradcheck(lambda z: sigmoid_focal_loss(z, target, 0.3, 1.5, "mean"),
                                    (logits,))  # fmt: skip


@pytest.mark.parametrize(
    ("target", "error", "pattern"),
    [
        (torch.ones(16, 4), ValueError, r"target: expected the logits' shape \(16, 5\)"),
        (torch.full((16, 5), 2.0), ValueError, r"target: expected labels .* in \[0, 1\]"),
        ([0, 1], TypeError, "target: expected a tensor"),
    ],
)
def test_bad_input_raises(target, error, pattern) -> None:
    logits, _ = _inputs()
    with pytest.raises(error, match=pattern):
        sigmoid_focal_loss(logits, target)


def test_bad_arguments_raise() -> None:
    logits, target = _inputs()
    with pytest.raises(ValueError, match="reduction: expected one of"):
        sigmoid_focal_loss(logits, target, reduction="avg")
    with pytest.raises(ValueError, match="gamma: expected a number >= 0"):
        sigmoid_focal_loss(logits, target, gamma=-1.0)
    with pytest.raises(TypeError, match="logits: expected a floating-point tensor"):
        sigmoid_focal_loss(torch.ones(3, 2, dtype=torch.long), torch.ones(3, 2))


def test_docstring_examples_run() -> None:
    import doctest

    from focalcal.losses import sigmoid

    result = doctest.testmod(sigmoid)
    assert result.attempted > 0 and result.failed == 0
