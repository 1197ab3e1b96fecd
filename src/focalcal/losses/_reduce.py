"""Shared machinery of every focalcal loss: input checks, dtype policy, ``weight`` /
``ignore_index`` / ``reduction`` with :class:`torch.nn.CrossEntropyLoss` semantics, and the one
fast primitive that gives the target (and runner-up) log-probabilities with a hand-written backward.

Written once here; each loss only states its per-item formula.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from focalcal._validation import check_choice, check_finite, check_logits, check_targets

__all__ = [
    "REDUCTIONS",
    "LossInput",
    "WeightedLoss",
    "compute_in_fp32",
    "one_minus_exp",
    "prepare",
    "reduce_items",
    "safe_pow",
    "target_log_probs",
]

REDUCTIONS = ("mean", "sum", "none")
_LOW_PRECISION = (torch.float16, torch.bfloat16)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class LossInput:
    """Validated inputs in compute layout.

    Attributes:
        logits: (N, C, d1, ...) floating tensor, float32 for fp16/bf16 input.
        target: (N, d1, ...) int64 labels, ignored items replaced by class 0 (safe to gather).
        valid: (N, d1, ...) bool, False where the target is ``ignore_index``.
        item_weight: (N, d1, ...) weight of each item: ``weight[target]`` (or 1), 0 where ignored.
        weight: the (C,) class weights in the compute dtype, or None.
    """

    logits: Tensor
    target: Tensor
    valid: Tensor
    item_weight: Tensor
    weight: Tensor | None


def _check_weight(weight: Any, num_classes: int, like: Tensor, validate: bool) -> Tensor | None:
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        raise TypeError(
            f"weight: expected a 1-D float tensor of {num_classes} class weights or None, "
            f"got {type(weight).__name__}"
        )
    if weight.ndim != 1 or weight.shape[0] != num_classes:
        raise ValueError(
            f"weight: expected shape ({num_classes},) (one weight per class), "
            f"got {tuple(weight.shape)}"
        )
    if not weight.is_floating_point():
        raise TypeError(f"weight: expected a floating-point tensor, got dtype {weight.dtype}")
    if validate:
        check_finite(weight, "weight")
        if bool((weight < 0).any()):
            raise ValueError(f"weight: expected non-negative class weights, got {weight.tolist()}")
    return weight.to(device=like.device, dtype=like.dtype)


def prepare(
    logits: Any,
    target: Any,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> LossInput:
    """Validate ``(logits, target)`` and build the per-item weights.

    Shape/dtype checks always run (no device sync); value checks (finite logits, labels in range,
    non-negative weights) run only with ``validate=True``.
    """
    logits = check_logits(logits, "logits", validate=validate)
    check_choice(reduction, "reduction", REDUCTIONS)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index: expected an int, got {ignore_index!r}")
    if logits.numel() == 0:
        raise ValueError(
            f"logits: expected a non-empty batch, got shape {tuple(logits.shape)} (empty input)"
        )
    num_classes = logits.shape[1]
    target = check_targets(
        target, logits.shape, num_classes, "target", ignore_index=ignore_index, validate=validate
    )
    if target.device != logits.device:
        raise ValueError(
            f"target: expected a tensor on the logits' device {logits.device}, got {target.device}"
        )
    if logits.dtype in _LOW_PRECISION:
        logits = logits.float()
    w = _check_weight(weight, num_classes, logits, validate)
    target = target.long()
    valid = target != ignore_index
    safe_target = target.masked_fill(~valid, 0)
    if w is None:
        item_weight = valid.to(logits.dtype)
    else:
        item_weight = w[safe_target] * valid
    return LossInput(logits, safe_target, valid, item_weight, w)


def reduce_items(weighted: Tensor, item_weight: Tensor, reduction: str) -> Tensor:
    r"""Reduce per-item losses that already carry their weight, as torch does.

    ``none`` returns ``weighted`` (shape of the target, 0 for ignored items); ``sum`` returns
    :math:`\sum_i w_i \ell_i`; ``mean`` returns :math:`\sum_i w_i \ell_i / \sum_i w_i`. When every
    item is ignored (total weight 0) ``mean`` returns 0 with a zero gradient, where torch would
    return NaN.
    """
    if reduction == "none":
        return weighted
    total = weighted.sum()
    if reduction == "sum":
        return total
    denom = item_weight.sum()
    return total / torch.where(denom > 0, denom, torch.ones_like(denom))


def compute_in_fp32(fn: F) -> F:
    """Run a loss with autocast disabled, so every op runs in the dtype ``prepare`` chose."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensor = next((a for a in args if isinstance(a, Tensor)), None)
        if tensor is not None and torch.is_autocast_enabled(tensor.device.type):
            with torch.autocast(device_type=tensor.device.type, enabled=False):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class _TargetLogProbs(torch.autograd.Function):
    """log p_y and (optionally) log p_j, the largest log-probability strictly below log p_y.

    Backward is written by hand: with ``g_y, g_j`` the incoming gradients,
    ``∂/∂z = g_y (e_y − p) + g_j (e_j − p)``, one pass over (N, C) instead of autograd's
    gather/max/where/log_softmax chain.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logits: Tensor, target: Tensor, runner_up: bool
    ) -> tuple[Tensor, Tensor]:
        logp = torch.log_softmax(logits, dim=1)
        index = target.unsqueeze(1)
        logp_y = logp.gather(1, index)
        if runner_up:
            below = torch.where(logp < logp_y, logp, float("-inf"))
            logp_j, index_j = below.max(dim=1, keepdim=True)
        else:
            logp_j = torch.full_like(logp_y, float("-inf"))
            index_j = index
        ctx.save_for_backward(logp, index, index_j)
        ctx.runner_up = runner_up
        return logp_y.squeeze(1), logp_j.squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor, grad_j: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        logp, index, index_j = ctx.saved_tensors
        grad_y = grad_y.unsqueeze(1)
        if ctx.runner_up:
            grad_j = grad_j.unsqueeze(1)
            total = grad_y + grad_j
        else:
            total = grad_y
        grad = torch.exp(logp).mul_(total.neg())
        grad.scatter_add_(1, index, grad_y)
        if ctx.runner_up:
            grad.scatter_add_(1, index_j, grad_j)
        return grad, None, None


def target_log_probs(
    logits: Tensor, target: Tensor, *, runner_up: bool = False
) -> tuple[Tensor, Tensor]:
    r"""Target log-probability :math:`\log p_y` and runner-up :math:`\log p_j` of every item.

    :math:`p_j = \max\{p_c : p_c < p_y\}` is the largest probability strictly below the target's
    (ties with :math:`p_y` excluded; :math:`\log p_j = -\infty` when none exists). The comparison is
    made on log-probabilities, so equal logits give exactly equal values and are excluded. Among
    tied candidates the gradient goes to the lowest class index, as ``topk`` does on CPU in the
    official code.

    Args:
        logits: (N, C, d1, ...) float logits.
        target: (N, d1, ...) int64 labels, all in range (ignored items already replaced).
        runner_up: also compute :math:`\log p_j`; otherwise it is all :math:`-\infty`.

    Returns:
        ``(log_p_y, log_p_j)``, each of shape (N, d1, ...), differentiable w.r.t. ``logits``
        (first order).
    """
    return _TargetLogProbs.apply(logits, target, runner_up)


def one_minus_exp(log_p: Tensor) -> Tensor:
    """:math:`1 - p` from :math:`\\log p` without cancellation (``-expm1``)."""
    return torch.expm1(log_p).neg()


def safe_pow(base: Tensor, exponent: Tensor | float) -> Tensor:
    """``base ** exponent`` for ``base >= 0`` with finite gradients at ``base = 0``.

    The base is clamped to the smallest normal number, so ``0 ** γ`` is (numerically) 0 for γ > 0
    and 1 for γ = 0, and the derivative ``γ·base^(γ−1)`` stays finite for 0 ≤ γ < 1.
    """
    tiny = torch.finfo(base.dtype).tiny
    return base.clamp_min(tiny).pow(exponent)


class WeightedLoss(nn.Module):
    """Base of every focalcal loss module: ``weight``, ``ignore_index``, ``reduction``, ``validate``.

    ``weight`` is stored as a buffer (moves with ``.to()``, saved in the state dict).
    """

    weight: Tensor | None

    def __init__(
        self,
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__()
        check_choice(reduction, "reduction", REDUCTIONS)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index: expected an int, got {ignore_index!r}")
        if weight is not None and not isinstance(weight, Tensor):
            raise TypeError(
                f"weight: expected a 1-D float tensor of class weights or None, "
                f"got {type(weight).__name__}"
            )
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.validate = validate

    def _common(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
            "validate": self.validate,
        }

    def extra_repr(self) -> str:
        parts = [f"reduction={self.reduction!r}"]
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.weight is not None:
            parts.append("weight=...")
        return ", ".join(parts)
