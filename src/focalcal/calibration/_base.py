"""The base classes of focalcal's post-hoc calibrators (scikit-learn estimator conventions).

Hyper-parameters live in ``__init__`` and are stored unchanged (so ``sklearn.base.clone`` works
without importing scikit-learn here); fitted attributes end in ``_``. The public methods validate
once at the boundary, convert numpy → torch, call the hooks ``_fit`` / ``_transform`` /
``_predict_proba`` on tensors, and give back the kind (numpy or torch, same device) they received.

A calibrator maps logits either to calibrated logits (:class:`LogitCalibrator`: temperature,
vector and matrix scaling) or to calibrated probabilities (:class:`ProbabilityCalibrator`:
histogram binning, isotonic regression); each base derives the other output from the one its
subclasses implement.
"""

from __future__ import annotations

import abc
import inspect
from typing import Any

import numpy as np
import torch
from torch import Tensor

from focalcal._validation import (
    ArrayLike,
    as_tensor,
    check_logits,
    check_targets,
    flatten_dense,
    restore_kind,
)

__all__ = ["Calibrator", "LogitCalibrator", "NotFittedError", "ProbabilityCalibrator"]


class NotFittedError(ValueError, AttributeError):
    """Raised when ``transform`` / ``predict_proba`` is called before ``fit``.

    Subclasses ``ValueError`` and ``AttributeError`` like scikit-learn's ``NotFittedError``.

    Example:
        >>> from focalcal.calibration import TemperatureScaling
        >>> try:
        ...     TemperatureScaling().transform(torch.zeros(2, 3))
        ... except NotFittedError as err:
        ...     print(err)
        This TemperatureScaling is not fitted yet: call fit(logits, labels) first
    """


def compute_dtype(device: torch.device) -> torch.dtype:
    """Fitting dtype: float64, except on MPS (which has none)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _rows(z: Tensor) -> Tensor:
    """(N, C, d1, ...) → (N·d1·…, C); (N, C) unchanged."""
    return z.movedim(1, -1).reshape(-1, z.shape[1]) if z.ndim > 2 else z


def _unrows(out: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of :func:`_rows` for an output with the input's ``shape``."""
    if len(shape) <= 2:
        return out
    return out.reshape(shape[0], *shape[2:], shape[1]).movedim(-1, 1)


class Calibrator(abc.ABC):
    """Base class: ``fit(logits, labels) -> self``, ``transform(logits)``, ``predict_proba(logits)``.

    Subclass :class:`LogitCalibrator` or :class:`ProbabilityCalibrator` rather than this class:
    they implement ``_fit(z, y)`` on validated tensors (``z`` float (N, C), ``y`` int64 (N,)) and
    one of ``_transform(z)`` (calibrated logits) or ``_predict_proba(z)`` (probabilities).

    Example:
        >>> from focalcal.calibration import get_calibrator
        >>> isinstance(get_calibrator("temperature"), Calibrator)
        True
    """

    # ------------------------------------------------------------------ scikit-learn protocol
    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters of this calibrator (the ``__init__`` arguments), as scikit-learn."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Calibrator:
        """Set hyper-parameters by name; unknown names raise ``ValueError``. Returns ``self``."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__}.set_params: unknown parameter {name!r}; "
                    f"expected one of {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ public API
    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Calibrator:
        """Fit on validation ``logits`` (N, C) and integer ``labels`` (N,). Returns ``self``.

        Dense predictions (N, C, d1, ...) with labels (N, d1, ...) are fitted per item.
        """
        z, _ = self._logits(logits)
        y, _ = as_tensor(labels, "labels")
        y = check_targets(y.to(z.device), z.shape, z.shape[1], "labels")
        z, y = flatten_dense(z, y)
        if z.shape[0] == 0:
            raise ValueError("logits: expected at least one sample to fit on, got N = 0")
        n_distinct = int(torch.unique(y).numel())
        if n_distinct < 2:
            raise ValueError(
                f"labels: expected at least 2 distinct classes to fit a calibrator, got only "
                f"class {int(y[0])} ({y.numel()} samples)"
            )
        self.n_classes_ = int(z.shape[1])
        self._fit(z, y.long())
        return self

    def transform(self, logits: ArrayLike) -> Tensor | np.ndarray:
        """Calibrated logits, same shape (N, C) or (N, C, d1, ...), kind, device and dtype."""
        z, was_numpy = self._checked_for_transform(logits)
        out = self._transform(_rows(z))
        return restore_kind(_unrows(out.to(z.dtype), z.shape), was_numpy)

    def predict_proba(self, logits: ArrayLike) -> Tensor | np.ndarray:
        """Calibrated probabilities (summing to 1 over dim 1), same shape, kind, device, dtype."""
        z, was_numpy = self._checked_for_transform(logits)
        out = self._predict_proba(_rows(z))
        return restore_kind(_unrows(out.to(z.dtype), z.shape), was_numpy)

    def fit_transform(self, logits: ArrayLike, labels: ArrayLike) -> Tensor | np.ndarray:
        """``fit(logits, labels).transform(logits)``."""
        return self.fit(logits, labels).transform(logits)

    # ------------------------------------------------------------------ hooks
    @abc.abstractmethod
    def _fit(self, z: Tensor, y: Tensor) -> None:
        """Fit on validated rows: ``z`` float (N, C), ``y`` int64 (N,)."""

    @abc.abstractmethod
    def _transform(self, z: Tensor) -> Tensor:
        """Calibrated logits (N, C) of the rows ``z`` (N, C)."""

    @abc.abstractmethod
    def _predict_proba(self, z: Tensor) -> Tensor:
        """Calibrated probabilities (N, C) of the rows ``z`` (N, C)."""

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _logits(logits: ArrayLike) -> tuple[Tensor, bool]:
        z, was_numpy = as_tensor(logits, "logits")
        if not z.is_floating_point():
            z = z.to(torch.get_default_dtype())
        return check_logits(z, "logits"), was_numpy

    def _checked_for_transform(self, logits: ArrayLike) -> tuple[Tensor, bool]:
        if not hasattr(self, "n_classes_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(logits, labels) first"
            )
        z, was_numpy = self._logits(logits)
        if z.shape[1] != self.n_classes_:
            raise ValueError(
                f"logits: expected {self.n_classes_} classes (as in fit), got shape "
                f"{tuple(z.shape)}"
            )
        return z, was_numpy


class LogitCalibrator(Calibrator):
    """A calibrator that maps logits to calibrated logits; probabilities are their softmax.

    Subclasses implement ``_fit(z, y)`` and ``_transform(z)``.

    Example:
        >>> class Halve(LogitCalibrator):
        ...     def _fit(self, z, y):
        ...         pass
        ...     def _transform(self, z):
        ...         return z / 2
        >>> z = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> Halve().fit(z, torch.tensor([0, 1])).predict_proba(z)[0]
        tensor([0.7311, 0.2689])
    """

    def _predict_proba(self, z: Tensor) -> Tensor:
        return torch.softmax(self._transform(z), dim=1)


class ProbabilityCalibrator(Calibrator):
    """A calibrator that maps logits to calibrated probabilities; ``transform`` is their log.

    Subclasses implement ``_fit(z, y)`` and ``_predict_proba(z)``; probabilities are floored at
    1e-12 before the log, so ``transform`` stays finite.

    Example:
        >>> class Uniform(ProbabilityCalibrator):
        ...     def _fit(self, z, y):
        ...         pass
        ...     def _predict_proba(self, z):
        ...         return torch.full_like(z, 1 / z.shape[1])
        >>> z = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> Uniform().fit(z, torch.tensor([0, 1])).transform(z)[0]
        tensor([-0.6931, -0.6931])
    """

    #: smallest calibrated probability, so that ``transform`` (log-probabilities) stays finite
    _PROB_FLOOR = 1e-12

    def _transform(self, z: Tensor) -> Tensor:
        return self._predict_proba(z).clamp_min(self._PROB_FLOOR).log()
