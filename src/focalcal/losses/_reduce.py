"""Shared machinery of every focalcal loss: input checks, dtype policy, and ``weight`` /
``ignore_index`` / ``reduction`` with :class:`torch.nn.CrossEntropyLoss` semantics.

Written once here; each loss only states its per-item formula.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from focalcal._validation import (
    check_bool,
    check_choice,
    check_finite,
    check_logits,
    check_targets,
)

__all__ = [
    "REDUCTIONS",
    "LossInput",
    "WeightedLoss",
    "check_inputs",
    "compute_in_fp32",
    "item_weights",
    "mean_denominator",
    "prepare",
    "reduce_items",
    "total_weight",
]

REDUCTIONS = ("mean", "sum", "none")
_LOW_PRECISION = (torch.float16, torch.bfloat16)

LossFn = TypeVar("LossFn", bound=Callable[..., Any])


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


def check_inputs(
    logits: Any,
    target: Any,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate a loss's arguments; return ``(logits, target, weight)`` in compute layout.

    The logits come back in float32 for fp16/bf16 input, the target as int64 (``ignore_index``
    kept), the class weights in the logits' dtype and device. Shape/dtype checks always run (no
    device sync); value checks (finite logits, labels in range, non-negative weights) run only
    with ``validate=True``. This is the one place where a loss's targets are checked.
    """
    validate = check_bool(validate, "validate")
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
    return logits, target.long(), _check_weight(weight, num_classes, logits, validate)


def prepare(
    logits: Any,
    target: Any,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> LossInput:
    """:func:`check_inputs`, plus the per-item weights and a gather-safe target."""
    logits, target, w = check_inputs(logits, target, weight, ignore_index, reduction, validate)
    safe_target, valid, item_weight = item_weights(target, w, ignore_index, logits.dtype)
    return LossInput(logits, safe_target, valid, item_weight, w)


def item_weights(
    target: Tensor, weight: Tensor | None, ignore_index: int, dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(safe_target, valid, item_weight)`` for int64 targets of any shape.

    ``safe_target`` has class 0 where the target is ``ignore_index`` (safe to gather; the product
    equals ``where(valid, target, 0)`` and is several times cheaper on CPU); ``item_weight`` is
    ``weight[target]`` (or 1) and 0 for ignored items: bool without ``weight`` and ``dtype``.
    """
    valid = target != ignore_index
    safe_target = target * valid
    if weight is not None:
        item_weight = weight[safe_target] * valid
    else:
        item_weight = valid if dtype is None else valid.to(dtype)
    return safe_target, valid, item_weight


def total_weight(item_weight: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Σ w, the mean's denominator (in ``dtype``, by default the weights' own; bool weights
    count items), clamped to the smallest normal number so that a batch whose items are all
    ignored has mean 0 (and gradient 0), where torch returns NaN."""
    dtype = item_weight.dtype if dtype is None else dtype
    return item_weight.sum(dtype=dtype).clamp_min_(torch.finfo(dtype).tiny)


def mean_denominator(
    target: Tensor, weight: Tensor | None, ignore_index: int, dtype: torch.dtype
) -> Tensor:
    """:func:`total_weight` straight from the targets: Σ w_y over the items that count (their
    number without ``weight``)."""
    return total_weight(item_weights(target, weight, ignore_index)[2], dtype)


def reduce_items(
    weighted: Tensor, item_weight: Tensor, reduction: str, *, total: Tensor | None = None
) -> Tensor:
    r"""Reduce per-item losses that already carry their weight, as torch does.

    ``none`` returns ``weighted`` (shape of the target, 0 for ignored items); ``sum`` returns
    :math:`\sum_i w_i \ell_i`; ``mean`` returns :math:`\sum_i w_i \ell_i / \sum_i w_i`
    (``total``, when given, is :func:`total_weight` already computed). When every item is ignored
    ``mean`` returns 0 with a zero gradient, where torch would return NaN.
    """
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / (total_weight(item_weight) if total is None else total)


def compute_in_fp32(fn: LossFn) -> LossFn:
    """Run a loss with autocast disabled, so every op runs in the dtype ``prepare`` chose.

    The logits are found by the parameter name ``logits`` (positional or keyword), so the guard
    works on functions and methods alike.
    """
    position = list(inspect.signature(fn).parameters).index("logits")

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logits = args[position] if len(args) > position else kwargs.get("logits")
        if isinstance(logits, Tensor) and torch.is_autocast_enabled(logits.device.type):
            with torch.autocast(device_type=logits.device.type, enabled=False):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


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
        self.validate = check_bool(validate, "validate")

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
