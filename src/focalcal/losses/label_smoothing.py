r"""Cross-entropy and label smoothing (paper and torch conventions).

Reference:
    Szegedy et al., *Rethinking the Inception Architecture*, CVPR 2016; Müller et al., *When Does
    Label Smoothing Help?*, NeurIPS 2019. The focal-loss paper's LS-0.05 baseline uses the "paper"
    convention (official ``CrossEntropySmoothed``, nlp branch of torrvision/focal_calibration).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import check_choice, check_logits, check_positive
from focalcal.losses._reduce import WeightedLoss, check_inputs, compute_in_fp32, mean_denominator
from focalcal.losses._soft import soft_cross_entropy

__all__ = ["CrossEntropyLoss", "LabelSmoothingLoss", "cross_entropy", "label_smoothing_loss"]

CONVENTIONS = ("paper", "torch")


def _torch_smoothing(eps: float, num_classes: int, convention: str) -> float:
    """The ``label_smoothing`` argument of torch that gives ``eps`` in ``convention``.

    Paper: q_y = 1 − ε, q_c = ε/(C−1). Torch: q_y = 1 − ε' + ε'/C, q_c = ε'/C. They coincide for
    ε' = ε·C/(C−1).
    """
    if convention == "torch":
        return eps
    if num_classes < 2:
        raise ValueError(
            f"logits: the paper convention spreads eps over C - 1 wrong classes and needs C >= 2, "
            f"got C={num_classes}"
        )
    smoothing = eps * num_classes / (num_classes - 1)
    if smoothing > 1.0:
        raise ValueError(
            f"eps: expected eps <= (C-1)/C = {(num_classes - 1) / num_classes:.4g} for the paper "
            f"convention with C={num_classes}, got {eps}"
        )
    return smoothing


@compute_in_fp32
def label_smoothing_loss(
    logits: Tensor,
    target: Tensor,
    eps: float = 0.05,
    *,
    convention: str = "paper",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Cross-entropy against smoothed targets, :math:`\ell_i = -\sum_c q_{ic}\log p_{ic}`.

    .. math:: \text{paper: } q_{iy} = 1-\varepsilon,\ q_{ic} = \tfrac{\varepsilon}{C-1}\ (c\ne y);
              \qquad \text{torch: } q_{iy} = 1-\varepsilon+\tfrac{\varepsilon}{C},\
              q_{ic} = \tfrac{\varepsilon}{C}

    ``convention="paper"`` (default) is the focal-loss paper's LS-0.05 (official
    ``CrossEntropySmoothed``); it equals torch's ``label_smoothing=ε·C/(C−1)``, which is how it is
    computed (one fused kernel). ``convention="torch"`` is
    ``F.cross_entropy(..., label_smoothing=eps)``. Class weights follow torch: each term
    :math:`q_{ic}\log p_{ic}` is weighted by :math:`w_c`, and the mean divides by
    :math:`\sum_i w_{y_i}`. Unlike the official code, (N, C, d1, ...) input, ``weight``,
    ``ignore_index`` and ``reduction`` are supported.

    A floating target (N, C, d1, ...) of class probabilities :math:`q` is smoothed the same way,
    :math:`q' = (1 - \varepsilon') q + \varepsilon'/C` (torch's ``label_smoothing=ε'``), and the
    mean divides by the number of items, as ``F.cross_entropy`` does for probability targets.

    Args:
        logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...) integer labels, or
            (N, C, d1, ...) probabilities.
        eps: smoothing mass in [0, 1] (paper: at most (C−1)/C).
        convention: ``"paper"`` or ``"torch"``.
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> loss = label_smoothing_loss(logits, torch.tensor([0]), eps=0.05)
        >>> round(loss.item(), 6)
        0.482606
        >>> loss.backward()
    """
    eps = check_positive(eps, "eps", allow_zero=True)
    if eps > 1.0:
        raise ValueError(f"eps: expected a number in [0, 1], got {eps}")
    check_choice(convention, "convention", CONVENTIONS)
    if isinstance(target, Tensor) and target.is_floating_point():
        num_classes = check_logits(logits, "logits", validate=False).shape[1]
        smoothing = _torch_smoothing(eps, num_classes, convention)
        return soft_cross_entropy(
            logits, target, smoothing=smoothing, weight=weight, reduction=reduction,
            validate=validate,
        )  # fmt: skip
    logits, target, weight = check_inputs(logits, target, weight, ignore_index, reduction, validate)
    smoothing = _torch_smoothing(eps, logits.shape[1], convention)
    # torch's own fused kernel; its mean is the sum over Σ w_y, except that it returns NaN when
    # no item counts, so the mean is taken here (``mean_denominator`` clamps that total)
    summed = F.cross_entropy(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction="sum" if reduction == "mean" else reduction,
        label_smoothing=smoothing,
    )
    if reduction != "mean":
        return summed
    return summed / mean_denominator(target, weight, ignore_index, logits.dtype)


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Cross-entropy :math:`\ell_i = -\log p_{i,y_i}` with focalcal's validation and dtype policy.

    Same numbers as :func:`torch.nn.functional.cross_entropy`, except that fp16/bf16 input is
    computed in fp32 and a batch whose items are all ignored has mean 0 (torch: NaN).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> cross_entropy(logits, torch.tensor([0])).backward()
    """
    return label_smoothing_loss(
        logits,
        target,
        0.0,
        convention="torch",
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        validate=validate,
    )


class LabelSmoothingLoss(WeightedLoss):
    r"""Label-smoothing module; see :func:`label_smoothing_loss`.

    Example:
        >>> import torch
        >>> criterion = LabelSmoothingLoss(eps=0.05, convention="paper")
        >>> logits = torch.randn(4, 10, requires_grad=True)
        >>> criterion(logits, torch.tensor([0, 3, 9, 1])).backward()
    """

    def __init__(
        self,
        eps: float = 0.05,
        convention: str = "paper",
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.eps = check_positive(eps, "eps", allow_zero=True)
        self.convention = check_choice(convention, "convention", CONVENTIONS)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_loss(
            logits, target, self.eps, convention=self.convention, **self._common()
        )

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}, convention={self.convention!r}, {super().extra_repr()}"


class CrossEntropyLoss(WeightedLoss):
    r"""Cross-entropy module with focalcal's validation; see :func:`cross_entropy`.

    Example:
        >>> import torch
        >>> criterion = CrossEntropyLoss(ignore_index=255)
        >>> logits = torch.randn(2, 5, 4, 4, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 5, (2, 4, 4))).backward()
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(logits, target, **self._common())
