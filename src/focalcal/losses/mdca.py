r"""MDCA: the multi-class difference in confidence and accuracy, a batch-level calibration
penalty added to cross-entropy, focal loss or label smoothing.

Reference:
    Hebbalaguppe, Prakash, Madan & Arora, *A Stitch in Time Saves Nine: A Train-Time
    Regularizing Loss for Improved Neural Network Calibration*, CVPR 2022; official code
    ``mdca-loss/MDCA-Calibration`` (``solvers/loss.py``, classes ``MDCA`` and
    ``ClassficationAndMDCA``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import check_choice, check_positive
from focalcal.losses._reduce import (
    WeightedLoss,
    check_inputs,
    compute_in_fp32,
    item_weights,
    reduce_items,
    total_weight,
)
from focalcal.losses.label_smoothing import label_smoothing_loss

__all__ = ["MDCALoss", "mdca_loss", "mdca_penalty"]

BASES = ("ce", "focal", "label_smoothing")


def mdca_penalty(probs: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    r"""The MDCA term of a batch (a scalar in the probabilities' dtype).

    .. math:: \text{MDCA} = \frac{1}{C}\sum_{c=1}^{C}\Bigl|\frac{1}{n}\sum_{i} p_{ic} -
              \frac{1}{n}\sum_{i}\mathbb{1}[y_i = c]\Bigr|

    over the n items that count (``valid``; every position of (N, C, d1, ...) input is an item);
    0 when none counts. Class weights do not enter it. The gradient of :math:`|\cdot|` at 0 is 0.

    Args:
        probs: (N, C) or (N, C, d1, ...) probabilities, differentiable.
        target: (N) or (N, d1, ...) labels in ``[0, C)`` (ignored items: any class).
        valid: bool, shape of ``target``: False where the item is ignored.
    """
    num_classes = probs.shape[1]
    p = probs.movedim(1, -1).reshape(-1, num_classes)
    mask = valid.reshape(-1).to(p.dtype)
    count = total_weight(mask)
    confidence = (p * mask.unsqueeze(1)).sum(dim=0) / count
    frequency = mask.new_zeros(num_classes).index_add_(0, target.reshape(-1), mask) / count
    return (confidence - frequency).abs().mean()


def _focal_items(logits: Tensor, safe_target: Tensor, item_weight: Tensor, gamma: float) -> Tensor:
    r"""Per item :math:`-w_y (1 - p_y)^{\gamma}\log p_y` in plain autograd (exact second
    derivatives); :math:`1 - p_y` is ``-expm1(log p_y)``, clamped at the smallest normal number so
    that a saturated :math:`p_y = 1` has gradient 0 for γ < 1 too (the limit of the formula)."""
    log_p_y = torch.log_softmax(logits, dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
    factor = (-torch.expm1(log_p_y)).clamp_min(torch.finfo(log_p_y.dtype).tiny).pow(gamma)
    return -factor * log_p_y * item_weight


def _hyper_parameters(
    beta: float, base: str, gamma: float, eps: float
) -> tuple[float, str, float, float]:
    """β ≥ 0, a known base, γ ≥ 0 and ε ≥ 0 (its upper bound depends on C), checked."""
    beta = check_positive(beta, "beta", allow_zero=True)
    check_choice(base, "base", BASES)
    gamma = check_positive(gamma, "gamma", allow_zero=True)
    return beta, base, gamma, check_positive(eps, "eps", allow_zero=True)


@compute_in_fp32
def mdca_loss(
    logits: Tensor,
    target: Tensor,
    beta: float = 1.0,
    *,
    base: str = "ce",
    gamma: float = 1.0,
    eps: float = 0.1,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""A base loss plus β·MDCA: :math:`\frac{1}{W}\sum_i w_i\ell_i + \beta\,\text{MDCA}`.

    .. math:: L_{mean} = \frac{\sum_i w_{y_i}\ell_i}{\sum_i w_{y_i}} + \beta\,\text{MDCA},\qquad
              L_{sum} = \sum_i w_{y_i}\ell_i + \beta\Bigl(\sum_i w_{y_i}\Bigr)\text{MDCA}

    with :math:`\ell_i` cross-entropy (``base="ce"``), focal loss
    :math:`-(1-p_{y})^{\gamma}\log p_{y}` (``"focal"``, the factor differentiated) or label
    smoothing with :math:`q_y = 1-\varepsilon`, :math:`q_c = \varepsilon/(C-1)`
    (``"label_smoothing"``), and MDCA the batch term of :func:`mdca_penalty`. Items: each
    sample, or each position of (N, C, d1, ...) input; MDCA is computed once over the items that
    count. ``reduction="mean"`` is the official ``ClassficationAndMDCA`` (``NLL+MDCA``,
    ``FL+MDCA``, ``LS+MDCA``; the official α of label smoothing is ``eps`` here); ``"sum"`` is
    the mean times the total weight, i.e. what a summed-loss training loop optimises; ``"none"``
    returns :math:`w_{y_i}(\ell_i + \beta\,\text{MDCA})` per item, whose sum is the ``"sum"``
    value. Unlike the official code, which calls ``.cuda()`` (it crashes without a GPU) and keeps
    its accumulator in torch's default dtype, it runs on any device in the logits' dtype, and
    ignored items are left out of MDCA. Every base is plain autograd, so second derivatives
    (``create_graph=True``) are exact.

    Args:
        logits: (N, C) or (N, C, d1, ...); fp16/bf16 are computed in fp32.
        target: (N) or (N, d1, ...) integer class indices (or ``ignore_index``).
        beta: β ≥ 0, the weight of MDCA (1 in the paper's scripts).
        base: ``"ce"``, ``"focal"`` or ``"label_smoothing"``.
        gamma: γ ≥ 0 of the focal base (1 in the official ``FL+MDCA``).
        eps: ε of the label-smoothing base (0.1 in the official ``LS+MDCA``).
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
        >>> loss = mdca_loss(logits, torch.tensor([0, 0]), beta=1.0)
        >>> round(loss.item(), 6)  # CE mean + |mean p_0 - 1|, the same for class 1
        1.626928
        >>> loss.backward()
    """
    beta, base, gamma, eps = _hyper_parameters(beta, base, gamma, eps)
    logits, target, w = check_inputs(logits, target, weight, ignore_index, reduction, validate)
    safe_target, valid, item_weight = item_weights(target, w, ignore_index, logits.dtype)
    kept = {"weight": w, "ignore_index": ignore_index, "reduction": "none"}
    if base == "ce":
        items = F.cross_entropy(logits, target, **kept)
    elif base == "focal":
        items = _focal_items(logits, safe_target, item_weight, gamma)
    else:
        items = label_smoothing_loss(logits, target, eps, validate=False, **kept)
    penalty = mdca_penalty(torch.softmax(logits, dim=1), safe_target, valid)
    return reduce_items(items + (beta * penalty) * item_weight, item_weight, reduction)


class MDCALoss(WeightedLoss):
    r"""Base loss + β·MDCA module; see :func:`mdca_loss`.

    ``MDCALoss()`` is the official ``NLL+MDCA`` with β = 1, ``MDCALoss(base="focal", gamma=1.0)``
    ``FL+MDCA``, ``MDCALoss(base="label_smoothing", eps=0.1)`` ``LS+MDCA``.

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...).
        - output: scalar, or the shape of ``target`` with ``reduction="none"``.

    Example:
        >>> criterion = MDCALoss(beta=1.0, base="focal", gamma=1.0)
        >>> logits = torch.randn(16, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (16,))).backward()
    """

    def __init__(
        self,
        beta: float = 1.0,
        *,
        base: str = "ce",
        gamma: float = 1.0,
        eps: float = 0.1,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.beta, self.base, self.gamma, self.eps = _hyper_parameters(beta, base, gamma, eps)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return mdca_loss(
            logits,
            target,
            self.beta,
            base=self.base,
            gamma=self.gamma,
            eps=self.eps,
            **self._common(),
        )

    def extra_repr(self) -> str:
        extra = {
            "ce": "",
            "focal": f", gamma={self.gamma:g}",
            "label_smoothing": f", eps={self.eps:g}",
        }
        return f"beta={self.beta:g}, base={self.base!r}{extra[self.base]}, {super().extra_repr()}"
