"""Post-hoc calibrators with scikit-learn conventions: ``fit(logits, labels) -> self``,
``transform(logits)`` (calibrated logits), ``predict_proba(logits)`` (calibrated probabilities).

All accept numpy arrays or torch tensors on any device and return the same kind, with logits
(N, C) or dense (N, C, d1, ...) (segmentation: calibrated per pixel).

Example:
    >>> import numpy as np
    >>> from focalcal.calibration import get_calibrator
    >>> rng = np.random.default_rng(0)
    >>> logits = 4 * rng.standard_normal((1000, 5)).astype(np.float32)
    >>> labels = (logits / 4 + rng.standard_normal((1000, 5))).argmax(1)
    >>> calibrated = get_calibrator("temperature").fit(logits, labels).predict_proba(logits)
    >>> type(calibrated).__name__, calibrated.dtype
    ('ndarray', dtype('float32'))
"""

from __future__ import annotations

from typing import Any

from focalcal._registry import Registry
from focalcal.calibration._base import (
    Calibrator,
    LogitCalibrator,
    NotFittedError,
    ProbabilityCalibrator,
)
from focalcal.calibration.affine import MatrixScaling, VectorScaling
from focalcal.calibration.nonparametric import HistogramBinning, IsotonicCalibration
from focalcal.calibration.temperature import TemperatureScaling, official_temperature_grid

__all__ = [
    "CALIBRATORS",
    "Calibrator",
    "HistogramBinning",
    "IsotonicCalibration",
    "LogitCalibrator",
    "MatrixScaling",
    "NotFittedError",
    "ProbabilityCalibrator",
    "TemperatureScaling",
    "VectorScaling",
    "get_calibrator",
    "official_temperature_grid",
]

#: name → calibrator class; ``get_calibrator(name, **kwargs)`` builds one, and
#: ``CALIBRATORS.names()`` lists the names (aliases included)
CALIBRATORS: Registry[Calibrator] = Registry("calibrator")
CALIBRATORS.register("temperature", "temperature_scaling", "ts")(TemperatureScaling)
CALIBRATORS.register("vector", "vector_scaling")(VectorScaling)
CALIBRATORS.register("matrix", "matrix_scaling", "odir")(MatrixScaling)
CALIBRATORS.register("histogram", "histogram_binning")(HistogramBinning)
CALIBRATORS.register("isotonic", "isotonic_regression")(IsotonicCalibration)


def get_calibrator(name: str, /, **kwargs: Any) -> Calibrator:
    """Build a calibrator by name: ``temperature``, ``vector``, ``matrix``, ``histogram``,
    ``isotonic`` (aliases: ``ts``, ``odir``, ``*_scaling``, ``histogram_binning``,
    ``isotonic_regression``). Unknown names raise ``ValueError`` listing the valid ones.

    Example:
        >>> ts = get_calibrator("ts", method="grid_ece")
        >>> type(ts).__name__, ts.method
        ('TemperatureScaling', 'grid_ece')
    """
    return CALIBRATORS.get(name, **kwargs)
