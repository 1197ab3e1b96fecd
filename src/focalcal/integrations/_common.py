"""What the integrations share: fitting a temperature on a model's evaluation logits."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from focalcal.calibration import TemperatureScaling

__all__ = ["fit_temperature"]


def fit_temperature(
    module: nn.Module, collect: Callable[[], tuple[Tensor, Tensor]]
) -> tuple[float, int]:
    """T of :class:`~focalcal.calibration.TemperatureScaling` fitted on ``collect()``'s
    ``(logits, labels)``, gathered with ``module`` in eval mode (its mode is restored after),
    and the number of items it was fitted on."""
    was_training = module.training
    module.eval()
    try:
        logits, labels = collect()
    finally:
        module.train(was_training)
    return float(TemperatureScaling().fit(logits, labels).temperature_), labels.numel()
