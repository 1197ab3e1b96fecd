r"""Sigmoid focal loss for binary and multi-label heads (independent sigmoid outputs).

Reference:
    Lin et al., *Focal Loss for Dense Object Detection*, ICCV 2017 (the α-balanced form);
    ``torchvision.ops.sigmoid_focal_loss``, which this equals.

No sigmoid dual focal loss is provided, because no sound definition exists. Dual focal loss adds
the runner-up probability :math:`p_j` of a *competing* class, which only means something when
classes share one softmax. Independent sigmoids give each label two outcomes, the label and its
complement, so the only runner-up is :math:`1 - p_t`. The loss then becomes
:math:`2^\gamma` × focal loss when :math:`p_t > 1/2` and plain focal loss below, which is focal
loss with a weight that jumps at :math:`p_t = 1/2`, not a new loss. Taking the runner-up across
labels does not work either: the labels are not mutually exclusive and their probabilities do
not sum to 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from focalcal._validation import _describe, check_choice, check_finite, check_real
from focalcal.losses._reduce import REDUCTIONS, compute_in_fp32

__all__ = ["SigmoidFocalLoss", "sigmoid_focal_loss"]


def _check_sigmoid_inputs(
    logits: Tensor, target: Tensor, gamma: float, reduction: str, validate: bool
) -> tuple[Tensor, Tensor]:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits: expected a floating-point tensor, got {_describe(logits)}")
    if not isinstance(target, Tensor):
        raise TypeError(f"target: expected a tensor of 0/1 labels, got {_describe(target)}")
    if target.shape != logits.shape:
        raise ValueError(
            f"target: expected the logits' shape {tuple(logits.shape)} (one 0/1 label or "
            f"probability per output), got {tuple(target.shape)}"
        )
    check_choice(reduction, "reduction", REDUCTIONS)
    if check_real(gamma, "gamma") < 0:
        raise ValueError(f"gamma: expected a number >= 0, got {gamma!r}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    target = target.to(logits.dtype)
    if validate and target.numel() > 0:
        check_finite(logits, "logits")
        check_finite(target, "target")
        lo, hi = torch.aminmax(target)
        if float(lo) < 0 or float(hi) > 1:
            raise ValueError(
                f"target: expected labels (or probabilities) in [0, 1], got values in "
                f"[{float(lo):.4g}, {float(hi):.4g}]"
            )
    return logits, target


@compute_in_fp32
def sigmoid_focal_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
    *,
    validate: bool = True,
) -> Tensor:
    r"""Sigmoid focal loss, equal to ``torchvision.ops.sigmoid_focal_loss``.

    .. math:: \ell = -\alpha_t (1 - p_t)^{\gamma} \log p_t,\qquad
              p_t = t\,\sigma(x) + (1 - t)(1 - \sigma(x)),\quad
              \alpha_t = \alpha t + (1 - \alpha)(1 - t)

    elementwise, with :math:`-\log p_t` computed as ``binary_cross_entropy_with_logits`` and
    :math:`1 - p_t = t\,\sigma(-x) + (1 - t)\,\sigma(x)` without cancellation. ``alpha < 0``
    disables the weighting, as in torchvision.

    Args:
        logits: any shape, e.g. (N, L) for L labels; fp16/bf16 are computed in fp32.
        target: same shape, 0/1 labels (or probabilities in [0, 1]), any dtype.
        alpha: weight of the positives in (0, 1), or negative for none (0.25).
        gamma: focusing parameter ≥ 0 (2).
        reduction: ``"none"`` (torchvision's default), ``"mean"`` (over all elements) or
            ``"sum"``.
        validate: check finiteness and the target range (one device sync).

    Example:
        >>> x = torch.tensor([[2.0, -1.0]], requires_grad=True)
        >>> loss = sigmoid_focal_loss(x, torch.tensor([[1.0, 0.0]]), reduction="sum")
        >>> round(loss.item(), 6)
        0.017444
        >>> loss.backward()
    """
    logits, target = _check_sigmoid_inputs(logits, target, gamma, reduction, validate)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    one_minus_p_t = target * torch.sigmoid(-logits) + (1 - target) * torch.sigmoid(logits)
    loss = ce * one_minus_p_t.pow(gamma)
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


class SigmoidFocalLoss(nn.Module):
    r"""Sigmoid focal loss module; see :func:`sigmoid_focal_loss`.

    Defaults as torchvision (α = 0.25, γ = 2) except ``reduction="mean"``, as every loss module.

    Shape:
        - logits: any shape, e.g. (N, L); target: the same shape (0/1 labels or probabilities).
        - output: scalar, or the logits' shape with ``reduction="none"``.

    Example:
        >>> criterion = SigmoidFocalLoss(alpha=0.25, gamma=2.0)
        >>> logits = torch.randn(8, 5, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 2, (8, 5))).backward()
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        reduction: str = "mean",
        *,
        validate: bool = True,
    ) -> None:
        super().__init__()
        self.alpha = check_real(alpha, "alpha")
        self.gamma = check_real(gamma, "gamma")
        self.reduction = check_choice(reduction, "reduction", REDUCTIONS)
        self.validate = validate

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return sigmoid_focal_loss(
            logits, target, self.alpha, self.gamma, self.reduction, validate=self.validate
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, gamma={self.gamma:g}, reduction={self.reduction!r}"
