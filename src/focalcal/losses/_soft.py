r"""Soft (probability) targets and label smoothing for the focal family, cross-entropy and Brier.

A target may be a floating (N, C, d1, ...) tensor of class probabilities :math:`q` (Mixup,
CutMix, knowledge distillation, human label distributions), as with
:func:`torch.nn.functional.cross_entropy`; or integer labels with ``label_smoothing=ε``, which
stands for :math:`q = (1 - \varepsilon)\,e_y + \varepsilon / C` (torch's convention). Every
focal-type loss extends class by class:

.. math:: \ell = -\sum_c q_c\, w_c\, b_c^{\gamma_c} \log p_c,\qquad
          b_c = \begin{cases} 1 - p_c & \text{focal}\\ 1 - p_c + p_{j(c)} & \text{dual focal}\\
          1 + p_c & \text{inverse focal}\end{cases}

with :math:`p_{j(c)} = \max\{p_k : p_k < p_c\}` (0 if none) the largest probability strictly below
:math:`p_c`, and :math:`\gamma_c` the loss's γ rule applied to :math:`p_c` (FLSD-53, AdaFocal's
bins) or to the margin :math:`p_c - p_{j(c)}` (DFL-SD, AdaDualFocal), from detached values. For a
one-hot :math:`q = e_y` only the term :math:`c = y` survives and each loss is exactly its
hard-target form (values and gradients); at γ = 0 it is cross-entropy with soft targets.

Brier extends as :math:`\sum_c (p_c - q_c)^2`. MMCE has no soft form (its calibration term
compares the confidence with the correctness :math:`1[\arg\max_c p_c = y]`, which a distribution
over classes does not define), so it raises.

Reductions follow ``F.cross_entropy``: for probability targets ``"mean"`` divides by the number
of items (not by the class weights) and ``ignore_index`` does not apply; for integer targets
with ``label_smoothing`` the mean divides by :math:`\sum_i w_{y_i}` over the items that are not
ignored. This path is eager autograd (the fused CPU kernel handles hard targets only), one
(N, C) pass more than the hard-target kernel; dual focal adds a sort per row.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import _describe, check_choice, check_finite, check_logits
from focalcal.losses._kernel import GammaFn
from focalcal.losses._reduce import (
    _LOW_PRECISION,
    REDUCTIONS,
    _check_weight,
    check_inputs,
    item_weights,
    reduce_items,
)

__all__ = [
    "check_label_smoothing",
    "check_probability_target",
    "reject_soft_target",
    "runner_up_probs",
    "soft_brier_loss",
    "soft_cross_entropy",
    "soft_focal_family_loss",
    "uses_soft_path",
]


def check_label_smoothing(value: Any) -> float:
    """``label_smoothing``: a number in [0, 1] (torch's convention)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"label_smoothing: expected a number in [0, 1], got {_describe(value)}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {value!r}")
    return float(value)


def uses_soft_path(target: Any, label_smoothing: float = 0.0) -> bool:
    """Whether a loss call goes through this module: floating targets, or label smoothing."""
    if isinstance(target, Tensor) and target.is_floating_point():
        return True
    return check_label_smoothing(label_smoothing) > 0.0


def sum_tolerance(dtype: torch.dtype, num_classes: int) -> float:
    r"""How far from 1 the row sums of a ``dtype`` target may be: :math:`8\epsilon(1 + \log_2 C)`.

    The sums are taken in float64, so what remains is the rounding of the target itself and of
    the computation that made it (a softmax's normaliser, Mixup's blend), which grow like
    :math:`\log_2 C` ulps for pairwise sums. float32, C = 10: 4e-6; float64: 8e-15.
    """
    return torch.finfo(dtype).eps * 8.0 * (1.0 + math.log2(max(num_classes, 2)))


def check_probability_target(target: Tensor, logits: Tensor, validate: bool = True) -> Tensor:
    """A floating target shaped like the logits; with ``validate``, rows of probabilities.

    Returns the target in the logits' dtype. Raises ``ValueError`` naming the shape, the range or
    the worst row sum (and the tolerance, :func:`sum_tolerance`) otherwise.
    """
    label_shape = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) == label_shape and target.shape != logits.shape:
        raise TypeError(
            f"target: expected integer class indices (e.g. torch.long) of shape {label_shape}, "
            f"or class probabilities of the logits' shape {tuple(logits.shape)}; got a floating "
            f"tensor of the labels' shape (dtype {target.dtype}): convert it with .long()"
        )
    if tuple(target.shape) != tuple(logits.shape):
        raise ValueError(
            f"target: expected class probabilities of the logits' shape {tuple(logits.shape)} "
            f"(a floating target holds one probability per class; integer labels would have "
            f"shape {label_shape}), got shape {tuple(target.shape)}"
        )
    if target.device != logits.device:
        raise ValueError(
            f"target: expected a tensor on the logits' device {logits.device}, got {target.device}"
        )
    if validate and target.numel() > 0:
        check_finite(target, "target")
        lo, hi = torch.aminmax(target.detach())
        worst = float((target.detach().sum(dim=1, dtype=torch.float64) - 1.0).abs().max())
        tol = sum_tolerance(target.dtype, target.shape[1])
        if float(lo) < 0.0 or float(hi) > 1.0 or worst > tol:
            raise ValueError(
                f"target: expected probabilities in [0, 1] summing to 1 over the classes (dim 1), "
                f"got values in [{float(lo):.4g}, {float(hi):.4g}] with row sums off by up to "
                f"{worst:.3g} (tolerance {tol:.2g} for {target.dtype}); normalise the target, or "
                f"pass integer class indices"
            )
    return target.to(logits.dtype)


def reject_soft_target(target: Any, loss: str, reason: str) -> None:
    """Raise ``TypeError`` for a floating target given to a loss that has no soft form."""
    if isinstance(target, Tensor) and target.is_floating_point():
        raise TypeError(
            f"target: expected integer class indices for {loss}, got a floating (probability) "
            f"target of dtype {target.dtype}; {loss} has no soft-target form ({reason}). Soft "
            f"targets work with cross_entropy, label_smoothing, focal, inverse focal, dual "
            f"focal, AdaFocal, AdaDualFocal and brier"
        )


def _prepare_soft(
    logits: Any, target: Tensor, weight: Tensor | None, reduction: str, validate: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validated ``(logits, probabilities, weight)`` in the compute dtype (fp32 for fp16/bf16)."""
    logits = check_logits(logits, "logits", validate=validate)
    check_choice(reduction, "reduction", REDUCTIONS)
    if logits.numel() == 0:
        raise ValueError(
            f"logits: expected a non-empty batch, got shape {tuple(logits.shape)} (empty input)"
        )
    if logits.dtype in _LOW_PRECISION:
        logits = logits.float()
    q = check_probability_target(target, logits, validate)
    return logits, q, _check_weight(weight, logits.shape[1], logits, validate)


def _class_view(weight: Tensor, like: Tensor) -> Tensor:
    """(C,) class weights shaped to broadcast over (N, C, d1, ...)."""
    return weight.view(1, -1, *([1] * (like.ndim - 2)))


def runner_up_probs(log_p: Tensor) -> Tensor:
    r""":math:`p_{j(c)} = \max\{p_k : p_k < p_c\}` for every class c (0 if none), (N, C, ...).

    Differentiable through the chosen :math:`p_k`; among tied candidates the lowest class index is
    chosen, as in the hard-target kernel. One sort per row: the sorted row is searched for the
    last entry strictly below each :math:`\log p_c`; the row is sorted reversed and stably, so
    that among equal values the last one is the lowest class index.
    """
    moved = log_p.movedim(1, -1)
    num_classes = moved.shape[-1]
    key = moved.detach()
    sorted_values, order = torch.sort(key.flip(-1), dim=-1, stable=True)
    position = torch.searchsorted(sorted_values.contiguous(), key.contiguous(), right=False) - 1
    index = (num_classes - 1) - order.gather(-1, position.clamp_min(0))
    p_j = moved.gather(-1, index).exp() * (position >= 0)
    return p_j.movedim(-1, 1)


def _class_terms(log_p: Tensor, gamma_fn: GammaFn, runner_up: bool) -> Tensor:
    r"""Per-class terms :math:`t_c = -b_c^{\gamma_c}\log p_c` (N, C, ...); see the module docstring."""
    p = log_p.exp()
    base = torch.expm1(log_p).neg()
    p_j = None
    if runner_up:
        p_j = runner_up_probs(log_p)
        base = base + p_j
    gamma, inverse = gamma_fn(p.detach(), None if p_j is None else p_j.detach())
    if inverse is True:
        base = 1.0 + p
    elif inverse is not False:
        base = torch.where(inverse, 1.0 + p, base)
    base = base.clamp_min(torch.finfo(base.dtype).tiny)
    return base.pow(gamma) * log_p.neg()


def _reduce_soft(items: Tensor, reduction: str) -> Tensor:
    """Probability-target reductions of ``F.cross_entropy``: the mean divides by the item count."""
    if reduction == "none":
        return items
    return items.sum() if reduction == "sum" else items.mean()


def _smoothed_items(
    terms: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, smoothing: float
) -> tuple[Tensor, Tensor]:
    r"""Hard targets with smoothing ε: :math:`(1-\varepsilon) w_y t_y + \tfrac{\varepsilon}{C}
    \sum_c w_c t_c` per item (0 where ignored), and the items' weights :math:`w_y`."""
    safe_target, valid, item_weight = item_weights(target, weight, ignore_index, terms.dtype)
    if weight is not None:
        terms = terms * _class_view(weight, terms)
    own = terms.gather(1, safe_target.unsqueeze(1)).squeeze(1)
    spread = terms.sum(1)
    items = own * (1.0 - smoothing) + spread * (smoothing / terms.shape[1])
    return items * valid, item_weight


def soft_focal_family_loss(
    logits: Any,
    target: Tensor,
    gamma_fn: GammaFn,
    *,
    runner_up: bool = False,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    validate: bool = True,
) -> Tensor:
    r"""A focal-type loss on probability targets or smoothed labels (see the module docstring).

    Args:
        logits: (N, C) or (N, C, d1, ...).
        target: (N, C, d1, ...) probabilities (floating), or (N, d1, ...) integer labels.
        gamma_fn: the hard-target loss's ``gamma_fn``, applied per (item, class) to the detached
            :math:`(p_c, p_{j(c)})`.
        runner_up: add :math:`p_{j(c)}` to the base (dual focal).
        weight, ignore_index, reduction, validate: as the hard-target loss (see the module
            docstring for the means).
        label_smoothing: ε in [0, 1]: :math:`q \leftarrow (1 - \varepsilon) q + \varepsilon / C`.

    Returns:
        A scalar, or (N, d1, ...) for ``reduction="none"``.
    """
    smoothing = check_label_smoothing(label_smoothing)
    if isinstance(target, Tensor) and target.is_floating_point():
        logits, q, weight = _prepare_soft(logits, target, weight, reduction, validate)
        terms = _class_terms(torch.log_softmax(logits, dim=1), gamma_fn, runner_up)
        if smoothing > 0.0:
            q = q * (1.0 - smoothing) + smoothing / q.shape[1]
        if weight is not None:
            terms = terms * _class_view(weight, terms)
        return _reduce_soft((q * terms).sum(1), reduction)
    logits, target, weight = check_inputs(logits, target, weight, ignore_index, reduction, validate)
    terms = _class_terms(torch.log_softmax(logits, dim=1), gamma_fn, runner_up)
    items, item_weight = _smoothed_items(terms, target, weight, ignore_index, smoothing)
    return reduce_items(items, item_weight, reduction)


def soft_cross_entropy(
    logits: Any,
    target: Tensor,
    *,
    smoothing: float,
    weight: Tensor | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Cross-entropy on probability targets, :math:`-\sum_c w_c q'_c \log p_c`, with
    :math:`q' = (1 - \varepsilon) q + \varepsilon / C`: ``F.cross_entropy``'s own kernel after
    focalcal's validation."""
    logits, q, weight = _prepare_soft(logits, target, weight, reduction, validate)
    return F.cross_entropy(logits, q, weight=weight, reduction=reduction, label_smoothing=smoothing)


def soft_brier_loss(
    logits: Any,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Brier score against probability targets, :math:`\ell = \sum_c (p_c - q_c)^2`.

    With class weights each item weighs :math:`\sum_c w_c q_c` (:math:`w_y` for one-hot
    :math:`q`); ``"mean"`` divides by the number of items, as for cross-entropy.
    """
    logits, q, weight = _prepare_soft(logits, target, weight, reduction, validate)
    items = (torch.softmax(logits, dim=1) - q).square().sum(1)
    if weight is not None:
        items = items * (q * _class_view(weight, q)).sum(1)
    return _reduce_soft(items, reduction)
