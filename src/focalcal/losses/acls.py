r"""ACLS: adaptive and conditional label smoothing (cross-entropy plus squared hinges on the
largest logit and on the gaps below it).

Reference:
    Park, Noh, Oh, Baek & Ham, *ACLS: Adaptive and Conditional Label Smoothing for Network
    Calibration*, ICCV 2023; official code ``cvlab-yonsei/ACLS`` (``calibrate/losses/acls.py``,
    class ``ACLS``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import check_positive
from focalcal.losses._reduce import WeightedLoss, compute_in_fp32, prepare, reduce_items

__all__ = ["ACLSLoss", "acls_loss", "acls_penalty"]


def acls_penalty(
    logits: Tensor, margin: float, pos_lambda: float = 1.0, neg_lambda: float = 0.1
) -> Tensor:
    r"""Per item :math:`\lambda_1\,\mathrm{pos} + \lambda_2\,\mathrm{neg}`, shape (N, d1, ...).

    .. math:: \mathrm{pos} = \sum_{c:\,z_c = M} \max(0, M - m)^2,\qquad
              \mathrm{neg} = \frac{1}{C - 1}\sum_{c:\,z_c < M} \max(0, \bar M - z_c - m)^2

    with :math:`M = \max_k z_k` (its gradient goes to the first maximal class) and
    :math:`\bar M` the same maximum detached, as in the official code: the gap hinge pushes the
    other logits up and leaves the maximum to the first hinge, so the gradient is, by design, not
    the derivative of the value with respect to the maximum. As in the official code every tied
    maximum counts once in ``pos`` and the ``neg`` divisor is C − 1 whatever the ties.
    """
    top = logits.max(dim=1, keepdim=True).values
    is_top = logits.detach() == top.detach()
    pos = (torch.relu(top - margin).square() * is_top).sum(dim=1)
    gaps = torch.relu(top.detach() - logits - margin).square() * ~is_top
    neg = gaps.sum(dim=1) / max(logits.shape[1] - 1, 1)
    return pos_lambda * pos + neg_lambda * neg


def _hyper_parameters(*values: float) -> tuple[float, ...]:
    """α, m, λ₁, λ₂ (in this order), each checked to be ≥ 0."""
    names = ("alpha", "margin", "pos_lambda", "neg_lambda")
    return tuple(check_positive(v, n, allow_zero=True) for n, v in zip(names, values, strict=True))


@compute_in_fp32
def acls_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float = 0.1,
    margin: float = 10.0,
    *,
    pos_lambda: float = 1.0,
    neg_lambda: float = 0.1,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""ACLS, :math:`\ell_i = \mathrm{CE}_i + \alpha(\lambda_1\,\mathrm{pos}_i +
    \lambda_2\,\mathrm{neg}_i)` (see :func:`acls_penalty`).

    .. math:: \ell_i = -\log p_{i,y_i} + \alpha\Bigl(\lambda_1 \sum_{c:\,z_{ic} = M_i}
              \max(0, M_i - m)^2 + \frac{\lambda_2}{C-1}\sum_{c:\,z_{ic} < M_i}
              \max(0, \bar M_i - z_{ic} - m)^2\Bigr)

    The first hinge caps the value of the largest logit at m, the second the gaps below it, so
    the smoothing adapts to each sample. With ``reduction="mean"`` this is the official ``ACLS``
    value on any batch without ignored items (the official code has the same normalisation: a
    mean over rows, and over the C − 1 non-maximal classes). Items whose target is
    ``ignore_index`` contribute nothing (the official code leaves them in the regulariser and its
    divisor; its ``num_classes`` and ``ignore_index`` arguments are unused). Class weights
    multiply the whole per-item loss.

    Args:
        logits: (N, C) or (N, C, d1, ...); fp16/bf16 are computed in fp32.
        target: (N) or (N, d1, ...) integer class indices (or ``ignore_index``).
        alpha: α ≥ 0, the weight of the regulariser (0.1 in the paper).
        margin: m ≥ 0 (10 in the paper).
        pos_lambda: λ₁ ≥ 0, the weight of the largest-logit hinge (1.0).
        neg_lambda: λ₂ ≥ 0, the weight of the gap hinge (0.1).
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Returns:
        A scalar, or the per-item losses (shape of ``target``) for ``reduction="none"``.

    Example:
        >>> logits = torch.tensor([[12.0, 0.0, 1.0]], requires_grad=True)
        >>> loss = acls_loss(logits, torch.tensor([0]))
        >>> round(loss.item(), 6)  # CE + 0.1 * (1.0 * 2**2 + 0.1 * (2**2 + 1**2) / 2)
        0.425023
        >>> loss.backward()
    """
    alpha, margin, pos_lambda, neg_lambda = _hyper_parameters(alpha, margin, pos_lambda, neg_lambda)
    x = prepare(logits, target, weight, ignore_index, reduction, validate)
    ce = F.cross_entropy(x.logits, x.target, weight=x.weight, reduction="none") * x.valid
    penalty = acls_penalty(x.logits, margin, pos_lambda, neg_lambda)
    items = ce + alpha * penalty * x.item_weight
    return reduce_items(items, x.item_weight, reduction)


class ACLSLoss(WeightedLoss):
    r"""ACLS module; see :func:`acls_loss`.

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...).
        - output: scalar, or the shape of ``target`` with ``reduction="none"``.

    Example:
        >>> criterion = ACLSLoss(alpha=0.1, margin=10.0, pos_lambda=1.0, neg_lambda=0.1)
        >>> logits = torch.randn(8, 10, requires_grad=True) * 8
        >>> criterion(logits, torch.randint(0, 10, (8,))).backward()
    """

    def __init__(
        self,
        alpha: float = 0.1,
        margin: float = 10.0,
        *,
        pos_lambda: float = 1.0,
        neg_lambda: float = 0.1,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.alpha, self.margin, self.pos_lambda, self.neg_lambda = _hyper_parameters(
            alpha, margin, pos_lambda, neg_lambda
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return acls_loss(
            logits,
            target,
            self.alpha,
            self.margin,
            pos_lambda=self.pos_lambda,
            neg_lambda=self.neg_lambda,
            **self._common(),
        )

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha:g}, margin={self.margin:g}, pos_lambda={self.pos_lambda:g}, "
            f"neg_lambda={self.neg_lambda:g}, {super().extra_repr()}"
        )
