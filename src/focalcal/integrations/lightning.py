"""Lightning callbacks for any ``LightningModule``: calibration metrics and temperature scaling.

Both need the validation logits and labels of a batch. They are taken from what
``validation_step`` returns when it is a dict with ``"logits"`` and ``"labels"`` (or
``"target"``), and otherwise computed as ``pl_module(batch[0])`` with labels ``batch[1]`` (the
``(x, y)`` batches of most modules; one extra forward pass). ``batch_logits=`` replaces that rule
with ``batch_logits(pl_module, batch) -> (logits, labels)``.

Example:
    >>> import lightning as L
    >>> from focalcal.integrations.lightning import (
    ...     CalibrationMetricsCallback, TemperatureScalingCallback)
    >>> trainer = L.Trainer(callbacks=[CalibrationMetricsCallback(), TemperatureScalingCallback()],
    ...                     logger=False, enable_checkpointing=False, enable_progress_bar=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from focalcal._optional import require
from focalcal._validation import _describe, check_n_bins
from focalcal.integrations._common import fit_temperature
from focalcal.metrics import CalibrationMetrics

L = require("lightning", "lightning")

__all__ = [
    "METRIC_NAMES",
    "CalibrationMetricsCallback",
    "TemperatureScalingCallback",
    "checkpoint_temperature",
]

#: logged name → key of :class:`~focalcal.metrics.CalibrationMetrics`
METRIC_NAMES = {"ECE": "ece", "AdaECE": "adaece", "CW-ECE": "classwise_ece", "NLL": "nll"}


def forward_batch_logits(pl_module: Any, batch: Any) -> tuple[Tensor, Tensor]:
    """``(pl_module(batch[0]), batch[1])`` without gradient: the default for ``(x, y)`` batches."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            f"batch: expected an (inputs, labels) pair, got {_describe(batch)}; return "
            f"{{'logits': ..., 'labels': ...}} from validation_step or pass batch_logits="
        )
    with torch.no_grad():
        return pl_module(batch[0]), batch[1]


def _step_logits(outputs: Any) -> tuple[Tensor, Tensor] | None:
    """``(logits, labels)`` from a ``validation_step`` dict, or None."""
    if not isinstance(outputs, Mapping) or "logits" not in outputs:
        return None
    for key in ("labels", "target"):
        if key in outputs:
            return outputs["logits"], outputs[key]
    return None


class CalibrationMetricsCallback(L.Callback):
    """Log ``cal/ECE``, ``cal/AdaECE``, ``cal/CW-ECE`` and ``cal/NLL`` every validation epoch.

    The values are those of :class:`focalcal.metrics.CalibrationMetrics` (equal to
    :func:`~focalcal.metrics.ece`, :func:`~focalcal.metrics.adaece`,
    :func:`~focalcal.metrics.classwise_ece`, :func:`~focalcal.metrics.nll` on all the epoch's
    validation logits; synchronised across processes by torchmetrics), logged with
    ``pl_module.log`` at the end of the epoch.

    Args:
        n_bins: bins of the binned metrics (15).
        prefix: prefix of the logged names (``"cal/"``).
        batch_logits: ``(pl_module, batch) -> (logits, labels)``; default: see the module
            docstring.
    """

    def __init__(
        self,
        n_bins: int = 15,
        *,
        prefix: str = "cal/",
        batch_logits: Callable[[Any, Any], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        self.n_bins = check_n_bins(n_bins)
        self.prefix = prefix
        self.batch_logits = batch_logits or forward_batch_logits
        self._metric: CalibrationMetrics | None = None

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._metric = CalibrationMetrics(self.n_bins, from_logits=True, smooth=False)
        self._metric.to(pl_module.device)

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        pair = _step_logits(outputs)
        logits, labels = pair if pair is not None else self.batch_logits(pl_module, batch)
        assert self._metric is not None
        self._metric.update(logits.detach(), labels)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._metric is None or self._metric.update_count == 0:
            return
        values = self._metric.compute()
        logged = {f"{self.prefix}{name}": values[key] for name, key in METRIC_NAMES.items()}
        pl_module.log_dict({k: v.float() for k, v in logged.items()})


class TemperatureScalingCallback(L.Callback):
    """Fit a temperature on the validation loader at the end of ``fit``; keep it in checkpoints.

    At ``on_fit_end`` the module runs (eval mode, no gradient) over ``trainer.val_dataloaders``;
    their logits fit :class:`~focalcal.calibration.TemperatureScaling` (the exact NLL minimiser).
    T is then ``temperature_``, ``pl_module.temperature`` and, in every checkpoint saved from
    then on, ``checkpoint["temperature"]`` (read it back with :func:`checkpoint_temperature`) and
    the callback's own state. With ``ckpt_path`` such a checkpoint is written right away. Each
    process fits on the validation batches it sees.

    Args:
        ckpt_path: where to save a checkpoint holding T after fitting (optional).
        batch_logits: ``(pl_module, batch) -> (logits, labels)``; default ``(x, y)`` batches.
    """

    def __init__(
        self,
        ckpt_path: str | Path | None = None,
        *,
        batch_logits: Callable[[Any, Any], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        self.ckpt_path = ckpt_path
        self.batch_logits = batch_logits or forward_batch_logits
        self.temperature_: float | None = None

    def _collect(self, pl_module: Any, loaders: Iterable) -> tuple[Tensor, Tensor]:
        logits, labels = [], []
        for loader in loaders:
            for batch in loader:
                batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                z, y = self.batch_logits(pl_module, batch)
                logits.append(z.detach().float().cpu())
                labels.append(y.cpu())
        if not logits:
            raise ValueError("TemperatureScalingCallback: the validation loaders gave no batches")
        return torch.cat(logits), torch.cat(labels)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        loaders = trainer.val_dataloaders
        if loaders is None:
            raise ValueError(
                "TemperatureScalingCallback: fit had no validation loader to fit T on; pass "
                "val_dataloaders= to trainer.fit or define val_dataloader()"
            )
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        self.temperature_, _ = fit_temperature(pl_module, lambda: self._collect(pl_module, loaders))
        pl_module.temperature = self.temperature_
        if self.ckpt_path is not None:
            trainer.save_checkpoint(self.ckpt_path)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict) -> None:
        if self.temperature_ is not None:
            checkpoint["temperature"] = self.temperature_

    def state_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature_}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.temperature_ = state_dict.get("temperature")


def checkpoint_temperature(path: str | Path) -> float:
    """T stored by :class:`TemperatureScalingCallback` in the checkpoint at ``path``."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if "temperature" not in checkpoint:
        raise ValueError(
            f"{path}: the checkpoint holds no temperature; it was saved before "
            f"TemperatureScalingCallback fitted one (pass ckpt_path= to the callback)"
        )
    return float(checkpoint["temperature"])
