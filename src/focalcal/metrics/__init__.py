"""Calibration metrics: functional, streaming (torchmetrics), bootstrap intervals and OOD scores.

Functional metrics take probabilities (N, C) and integer labels (N,), or logits with
``from_logits=True``; see :mod:`focalcal.metrics.functional` for the conventions.

Example:
    >>> import torch
    >>> from focalcal import metrics
    >>> logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    >>> labels = torch.tensor([0, 2])
    >>> round(float(metrics.ece(logits, labels, from_logits=True)), 4)  # (0.3348 + 0.9094) / 2
    0.6221
"""

from focalcal.metrics import ood
from focalcal.metrics.binning import (
    BinSums,
    assign_bins,
    bin_sums,
    classwise_bin_sums,
    equal_mass_edges,
    equal_width_edges,
)
from focalcal.metrics.bootstrap import (
    BootstrapResult,
    PairedBootstrapResult,
    bootstrap_ci,
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
from focalcal.metrics.streaming import (
    ECE,
    MCE,
    NLL,
    RMSCE,
    Accuracy,
    AdaECE,
    Brier,
    CalibrationMetrics,
    ClasswiseECE,
    SmoothECE,
)

__all__ = [
    "ECE",
    "MCE",
    "NLL",
    "RMSCE",
    "Accuracy",
    "AdaECE",
    "BinSums",
    "BootstrapResult",
    "Brier",
    "CalibrationBins",
    "CalibrationMetrics",
    "ClasswiseECE",
    "PairedBootstrapResult",
    "SmoothECE",
    "accuracy",
    "adaece",
    "assign_bins",
    "bin_sums",
    "bootstrap_ci",
    "brier",
    "calibration_bins",
    "classwise_bin_sums",
    "classwise_ece",
    "ece",
    "equal_mass_edges",
    "equal_width_edges",
    "error",
    "mce",
    "nll",
    "ood",
    "paired_bootstrap",
    "rmsce",
    "smooth_ece",
]

# ---- independent sigmoid outputs: binary and per-label (marginal) ECE ----------------------------
from focalcal.metrics.multilabel import (
    BinaryECE,
    MultilabelECE,
    binary_ece,
    multilabel_ece,
)

__all__ += ["BinaryECE", "MultilabelECE", "binary_ece", "multilabel_ece"]
