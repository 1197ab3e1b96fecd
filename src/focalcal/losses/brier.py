r"""Brier score as a training loss.

Reference:
    Brier, *Verification of forecasts expressed in terms of probability*, Monthly Weather Review
    1950; used as a calibration baseline by Mukhoti et al., NeurIPS 2020 (official ``BrierScore``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from focalcal.losses._reduce import WeightedLoss, compute_in_fp32, prepare, reduce_items
from focalcal.losses._soft import soft_brier_loss

__all__ = ["BrierLoss", "brier_loss"]


@compute_in_fp32
def brier_loss(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Brier score :math:`\ell_i = \sum_c (p_{ic} - \mathbb{1}[c = y_i])^2`.

    .. math:: \ell_i = \sum_{c=1}^{C} \bigl(p_{ic} - \mathbb{1}[c = y_i]\bigr)^2,\qquad
              p_i = \mathrm{softmax}(z_i)

    The target term :math:`p_y - 1` is computed as ``expm1(log p_y)`` (no cancellation near
    :math:`p_y = 1`). ``reduction="mean"`` is the official ``BrierScore`` (a mean over rows; the
    official code crashes on CPU tensors, this one runs on any device).

    Args:
        logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...) integer labels, or
            (N, C, d1, ...) floating probabilities :math:`q`, giving :math:`\sum_c (p_c - q_c)^2`
            (see :func:`~focalcal.losses._soft.soft_brier_loss`).
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Example:
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> loss = brier_loss(logits, torch.tensor([0]))
        >>> round(loss.item(), 6)
        0.180061
        >>> loss.backward()
    """
    if isinstance(target, Tensor) and target.is_floating_point():
        return soft_brier_loss(
            logits, target, weight=weight, reduction=reduction, validate=validate
        )
    x = prepare(logits, target, weight, ignore_index, reduction, validate)
    log_p = torch.log_softmax(x.logits, dim=1)
    index = x.target.unsqueeze(1)
    residual = log_p.exp().scatter(1, index, torch.expm1(log_p.gather(1, index)))
    items = residual.square().sum(dim=1)
    return reduce_items(items * x.item_weight, x.item_weight, reduction)


class BrierLoss(WeightedLoss):
    r"""Brier-score module; see :func:`brier_loss`.

    Example:
        >>> criterion = BrierLoss()
        >>> logits = torch.randn(4, 10, requires_grad=True)
        >>> criterion(logits, torch.tensor([0, 3, 9, 1])).backward()
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return brier_loss(logits, target, **self._common())
