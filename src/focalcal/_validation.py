"""The one validation helper of focalcal.

Every public entry point (losses, metrics, calibrators, data, CLI) validates its inputs here, so
that an error always names the argument, what was expected and what was received.

Checks that need a device synchronisation (finiteness, label range, probability rows) are kept
separate from the cheap shape/dtype checks so hot loops can switch them off (``validate=False``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ArrayLike",
    "as_tensor",
    "check_bool",
    "check_choice",
    "check_finite",
    "check_int",
    "check_kwargs",
    "check_label_range",
    "check_logits",
    "check_n_bins",
    "check_positive",
    "check_probabilities",
    "check_real",
    "check_targets",
    "flatten_dense",
    "probability_tolerance",
    "restore_kind",
]

ArrayLike = Tensor | np.ndarray | Sequence[Any]


def _describe(x: Any) -> str:
    """Short description of a value for error messages: type, dtype and shape."""
    if isinstance(x, Tensor):
        return f"Tensor(dtype={x.dtype}, shape={tuple(x.shape)}, device={x.device})"
    if isinstance(x, np.ndarray):
        return f"ndarray(dtype={x.dtype}, shape={x.shape})"
    return f"{type(x).__name__} {x!r}"[:200]


def as_tensor(x: Any, name: str, *, dtype: torch.dtype | None = None) -> tuple[Tensor, bool]:
    """Convert numpy arrays / sequences / tensors to a tensor.

    Returns ``(tensor, was_numpy)`` so callers can give back the kind they received
    (see :func:`restore_kind`). Tensors keep their device.
    """
    if isinstance(x, Tensor):
        t = x
        was_numpy = False
    elif isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name}: expected a numeric array, got {_describe(x)}")
        t = torch.from_numpy(np.ascontiguousarray(x))
        was_numpy = True
    elif isinstance(x, (list, tuple)):
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name}: expected a numeric array or tensor, got {_describe(x)}"
            ) from err
        was_numpy = True
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {_describe(x)}")
    if dtype is not None:
        t = t.to(dtype)
    return t, was_numpy


def restore_kind(t: Tensor, was_numpy: bool) -> Tensor | np.ndarray:
    """Return ``t`` as numpy when the input was numpy, else unchanged."""
    return t.detach().cpu().numpy() if was_numpy else t


def check_bool(value: Any, name: str) -> bool:
    """A boolean option: ``True`` or ``False`` (numpy booleans too), never a truthy stand-in.

    A string such as ``"false"`` is truthy in Python, so accepting it would silently flip the
    option; 0/1 and tensors are refused for the same reason.

    Example:
        >>> check_bool(False, "from_logits")
        False
        >>> check_bool("false", "from_logits")
        Traceback (most recent call last):
        ...
        TypeError: from_logits: expected a bool (True or False), got str 'false'
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}: expected a bool (True or False), got {_describe(value)}")


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def check_real(value: Any, name: str) -> float:
    """A finite real number (not bool), of any sign."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {_describe(value)}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    v = check_real(value, name)
    if not (v >= 0 if allow_zero else v > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value!r}")
    return v


def check_int(value: Any, name: str, *, min_value: int | None = None) -> int:
    """An integer (not bool), optionally ``>= min_value``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {_describe(value)}")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name}: expected an integer >= {min_value}, got {value}")
    return int(value)


def check_kwargs(
    func: Callable[..., Any], kwargs: Mapping[str, Any], name: str, *, skip: Sequence[str] = ()
) -> None:
    """Keyword options must be parameters of ``func`` (skipped when it takes ``**kwargs``).

    Raises ``TypeError`` naming the unknown options and listing the valid ones, so a typo is
    never silently ignored. ``skip`` leaves out parameters the caller fills itself.
    """
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [
        n
        for n, p in params.items()
        if p.kind is not inspect.Parameter.VAR_POSITIONAL and n not in skip
    ]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {unknown}; valid options: {valid}")


def check_n_bins(n_bins: Any, name: str = "n_bins") -> int:
    """An integer >= 1."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer >= 1, got {_describe(n_bins)}")
    if n_bins < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {n_bins}")
    return int(n_bins)


def check_finite(x: Tensor, name: str) -> None:
    """Raise if ``x`` has NaN or inf (one device sync)."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    # min and max propagate NaN and are inf when any entry is: one fast reduction pass
    lo, hi = torch.aminmax(x.detach())
    if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: expected finite values, got {n_bad} NaN/inf entries")


def check_logits(logits: Any, name: str = "logits", *, validate: bool = True) -> Tensor:
    """Logits (N, C) or (N, C, d1, ...): a floating tensor with C >= 1 (finite when validating)."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {_describe(logits)}")
    if not logits.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(
            f"{name}: expected shape (N, C) or (N, C, d1, ...), got shape {tuple(logits.shape)}"
        )
    if logits.shape[1] < 1:
        raise ValueError(
            f"{name}: expected at least one class (C >= 1), got shape {tuple(logits.shape)}"
        )
    if validate:
        check_finite(logits, name)
    return logits


def check_targets(
    target: Any,
    input_shape: torch.Size | Sequence[int],
    num_classes: int,
    name: str = "target",
    *,
    ignore_index: int | None = None,
    validate: bool = True,
) -> Tensor:
    """Integer class labels matching ``input_shape`` without its class dim (dim 1).

    With ``validate``, every label must lie in ``[0, num_classes)`` or equal ``ignore_index``.
    """
    if not isinstance(target, Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor of integer labels, got {_describe(target)}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"{name}: expected integer class indices (e.g. torch.long), got dtype {target.dtype}"
        )
    shape = tuple(input_shape)
    expected = (shape[0], *shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{name}: expected shape {expected} to match input shape {shape}, "
            f"got {tuple(target.shape)}"
        )
    if validate:
        check_label_range(target, num_classes, name, ignore_index=ignore_index)
    return target


def check_label_range(
    labels: Tensor, num_classes: int, name: str = "labels", *, ignore_index: int | None = None
) -> None:
    """Every label lies in ``[0, num_classes)`` or equals ``ignore_index`` (one device sync).

    The common case costs one ``aminmax`` pass over the labels; the detailed message (which
    values are wrong) is built only when a label is out of range.

    Example:
        >>> check_label_range(torch.tensor([0, 2]), 2)
        Traceback (most recent call last):
        ...
        ValueError: labels: expected class indices in [0, 2), got values [2] (min 2, max 2)
    """
    if labels.numel() == 0:
        return
    lo, hi = torch.stack(torch.aminmax(labels.detach())).tolist()  # one sync for both
    if 0 <= lo and hi < num_classes:
        return
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        valid |= labels == ignore_index
    if bool(valid.all()):
        return
    bad = labels[~valid]
    ign = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
    raise ValueError(
        f"{name}: expected class indices in [0, {num_classes}){ign}, got values "
        f"{sorted(set(bad[:5].tolist()))} (min {int(bad.min())}, max {int(bad.max())})"
    )


def probability_tolerance(dtype: torch.dtype, num_classes: int, floor: float = 1e-3) -> float:
    r"""How far a row of ``num_classes`` probabilities of ``dtype`` may sum away from 1.

    Each entry rounded to ``dtype`` is off by at most :math:`u = \varepsilon/2` relative, so the
    row sum is within :math:`u` of 1; summing C entries in the accumulation dtype adds at most
    :math:`C\,\varepsilon_{acc}`. The tolerance doubles the rounding term for headroom and
    never goes below ``floor`` (inputs saved with a few digits):

    .. math:: \mathrm{tol} = \max(\mathrm{floor},\ \varepsilon_{dtype} + C\,\varepsilon_{acc})

    Example:
        >>> probability_tolerance(torch.float32, 10)
        0.001
        >>> probability_tolerance(torch.bfloat16, 10) > 0.0078
        True
    """
    accumulate = torch.float64 if dtype == torch.float64 else torch.float32
    rounding = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(floor, rounding + num_classes * torch.finfo(accumulate).eps)


def check_probabilities(
    probs: Tensor, name: str = "probs", *, dim: int = 1, atol: float = 1e-3
) -> None:
    """Rows along ``dim`` must be probability vectors: finite, in [0, 1], summing to 1.

    The row sums may be off by :func:`probability_tolerance` of the dtype and the number of
    classes (at least ``atol``), so a bfloat16 or float16 softmax output is accepted. Raises with
    a hint to pass ``from_logits=True`` when the input looks like logits.

    Example:
        >>> check_probabilities(torch.randn(4, 10).softmax(1).bfloat16())
        >>> check_probabilities(torch.tensor([[2.0, -1.0]]))
        Traceback (most recent call last):
        ...
        ValueError: probs: expected probabilities in [0, 1] summing to 1 ... pass from_logits=True.
    """
    check_finite(probs, name)
    if probs.numel() == 0:
        return
    lo, hi = float(probs.min()), float(probs.max())
    sums = probs.sum(dim=dim, dtype=torch.float32 if probs.dtype != torch.float64 else None)
    worst = float((sums - 1).abs().max())
    tolerance = probability_tolerance(probs.dtype, probs.shape[dim], atol)
    if lo < 0 or hi > 1 + 1e-6 or worst > tolerance:
        hint = (
            " The values look like logits: pass from_logits=True."
            if lo < 0 or hi > 1 or worst > 0.5
            else ""
        )
        raise ValueError(
            f"{name}: expected probabilities in [0, 1] summing to 1 along dim {dim}, got values in "
            f"[{lo:.4g}, {hi:.4g}] with row sums off by up to {worst:.3g} "
            f"(tolerance {tolerance:.3g}).{hint}"
        )


def flatten_dense(x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(N, C, d1, ...) + (N, d1, ...) → (N·d1·…, C) + (N·d1·…,); (N, C) passes through."""
    if x.ndim > 2:
        c = x.shape[1]
        x = x.movedim(1, -1).reshape(-1, c)
        target = target.reshape(-1)
    return x, target
