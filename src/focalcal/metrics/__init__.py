"""Calibration metrics: functional, streaming (torchmetrics), bootstrap intervals and OOD scores.

Functional metrics take probabilities (N, C) and integer labels (N,), or logits with
``from_logits=True``; see :mod:`focalcal.metrics.functional` for the conventions. The streaming
classes (``ECE``, ``CalibrationMetrics``, ...) are imported on first use, so that
``import focalcal.metrics`` does not load torchmetrics (and, through it, matplotlib and scipy).
The one binning primitive, shared with the losses, is :mod:`focalcal.metrics.binning`.

Example:
    >>> import torch
    >>> from focalcal import metrics
    >>> logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    >>> labels = torch.tensor([0, 2])
    >>> round(float(metrics.ece(logits, labels, from_logits=True)), 4)  # (0.3348 + 0.9094) / 2
    0.6221
"""

from __future__ import annotations

import importlib
from typing import Any

from focalcal.metrics import binning, coverage, ood
from focalcal.metrics.bootstrap import (
    BootstrapResult,
    PairedBootstrapResult,
    bootstrap_ci,
    bootstrap_interval,
    paired_bootstrap,
)
from focalcal.metrics.functional import (
    CalibrationBins,
    accuracy,
    adaece,
    brier,
    calibration_bins,
    classwise_ece,
    ece,
    error,
    mce,
    nll,
    rmsce,
)
from focalcal.metrics.smooth import smooth_ece

#: the streaming classes, loaded from :mod:`focalcal.metrics.streaming` on first access
_STREAMING = frozenset(
    "ECE MCE NLL RMSCE Accuracy AdaECE Brier CalibrationMetrics ClasswiseECE SmoothECE".split()
)

__all__ = [
    "ECE",
    "MCE",
    "NLL",
    "RMSCE",
    "Accuracy",
    "AdaECE",
    "BootstrapResult",
    "Brier",
    "CalibrationBins",
    "CalibrationMetrics",
    "ClasswiseECE",
    "PairedBootstrapResult",
    "SmoothECE",
    "accuracy",
    "adaece",
    "binning",
    "bootstrap_ci",
    "bootstrap_interval",
    "brier",
    "calibration_bins",
    "classwise_ece",
    "coverage",
    "ece",
    "error",
    "mce",
    "nll",
    "ood",
    "paired_bootstrap",
    "rmsce",
    "smooth_ece",
]


def __getattr__(name: str) -> Any:
    """The streaming classes, imported (with torchmetrics) on first access (PEP 562)."""
    if name in _STREAMING:
        value = getattr(importlib.import_module("focalcal.metrics.streaming"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_STREAMING})


# ---- independent sigmoid outputs: binary and per-label (marginal) ECE ----------------------------
#: loaded from :mod:`focalcal.metrics.multilabel` on first access (its streaming classes need
#: torchmetrics)
_MULTILABEL = frozenset({"BinaryECE", "MultilabelECE", "binary_ece", "multilabel_ece"})
__all__ += sorted(_MULTILABEL)
_streaming_getattr = __getattr__


def __getattr__(name: str) -> Any:
    """The multi-label metrics, then the streaming classes, imported on first access."""
    if name in _MULTILABEL:
        value = getattr(importlib.import_module("focalcal.metrics.multilabel"), name)
        globals()[name] = value
        return value
    return _streaming_getattr(name)


def __dir__() -> list[str]:  # noqa: F811
    return sorted({*globals(), *_STREAMING, *_MULTILABEL})
