"""The LightningModule: a network, a focalcal loss and the papers' optimiser and schedule.

Per epoch it

1. re-seeds torch's RNG from ``(seed, epoch, rank)`` (augmentation, dropout) and reshuffles the
   training loader from ``(seed, epoch)``, so an epoch's randomness does not depend on how the run
   got there — a resumed run replays exactly what an uninterrupted run would do;
2. calls ``loss.set_epoch(epoch)`` when the loss is epoch-scheduled (e.g. FLSc-531);
3. trains with the loss summed (``paper``) or averaged over the batch, Lightning's gradient-norm
   clipping, SGD + MultiStepLR stepped once per epoch (the DFL/AdaFocal convention);
4. evaluates the whole validation split on every rank (identical results, no gathering), logs
   validation error / NLL / ECE and, for adaptive losses, calls ``loss.update(val_probs,
   val_labels)`` — AdaFocal's per-epoch γ update from the validation split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .. import metrics
from .._optional import require
from .config import TrainConfig
from .predict import predict_logits

L = require("lightning", "train")

__all__ = ["CalibrationModule", "epoch_seed"]


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The RNG seed of ``epoch`` on ``rank``: distinct per (seed, epoch, rank), stable across runs.

    Example:
        >>> epoch_seed(1, 0) != epoch_seed(1, 1) != epoch_seed(1, 1, rank=1)
        True
    """
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63 - 1)


class CalibrationModule(L.LightningModule):
    """Trains ``model`` with ``criterion`` under ``config`` (see :class:`TrainConfig`).

    Args:
        model: any ``nn.Module`` mapping a transformed batch to logits (N, C).
        criterion: a focalcal loss module (``focalcal.losses.get_loss``); hooks ``set_epoch``
            and ``update`` are called when present.
        config: the run configuration (optimiser, schedule, seed, ``n_bins``).
        val_inputs, val_targets: the whole validation split (raw, as stored by the dataset),
            or ``None`` to skip the per-epoch validation pass.
        eval_transform: maps a raw batch on the device to the model's input (no augmentation).
        train_loader: ``factory(trainer) -> iterable`` of training batches on the device; called
            once the trainer knows the process rank, world size and device.
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        config: TrainConfig,
        val_inputs: Tensor | None = None,
        val_targets: Tensor | None = None,
        eval_transform: Any = None,
        train_loader: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.config = config
        self.val_inputs = val_inputs
        self.val_targets = val_targets
        self.eval_transform = eval_transform
        self._train_loader_factory = train_loader
        self._epoch_sums: Tensor | None = None

    def train_dataloader(self) -> Any:
        if self._train_loader_factory is None:
            raise ValueError("train_loader: expected a loader factory to train, got None")
        return self._train_loader_factory(self.trainer)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    # -- epoch hooks ------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        torch.manual_seed(epoch_seed(self.config.seed, epoch, self.global_rank))
        loader = self.trainer.train_dataloader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if hasattr(self.criterion, "set_epoch"):
            self.criterion.set_epoch(epoch)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        logits = self.model(inputs)
        loss = self.criterion(logits, targets)
        # Epoch sums kept as tensors (no per-step logging or device sync: Lightning's per-step
        # ``self.log`` costs more than a small model's step); logged once in on_train_epoch_end.
        n = targets.numel()
        with torch.no_grad():
            total = loss.detach() if self.config.loss_reduction == "sum" else loss.detach() * n
            correct = (logits.detach().argmax(1) == targets).sum()
        sums = torch.stack(
            [total.float(), correct.float(), torch.tensor(float(n), device=total.device)]
        )
        self._epoch_sums = sums if self._epoch_sums is None else self._epoch_sums + sums
        return loss

    def on_train_epoch_end(self) -> None:
        if self._epoch_sums is not None:
            loss_sum, correct, count = self._epoch_sums
            self._epoch_sums = None
            log = {"on_epoch": True, "sync_dist": True}
            self.log("train_loss", loss_sum / count, prog_bar=True, **log)
            self.log("train_acc", correct / count, **log)
        if not self._validates_this_epoch():
            return
        was_training = self.model.training
        logits = predict_logits(
            self.model,
            self.val_inputs,
            transform=self.eval_transform,
            batch_size=self.config.eval_batch_size,
            device=self.device,
        )
        self.model.train(was_training)
        labels = self.val_targets.to(logits.device)
        probs = logits.softmax(dim=1)
        n_bins = self.config.n_bins
        self.log_dict(
            {
                "val_error": metrics.error(probs, labels),
                "val_nll": metrics.nll(logits, labels, from_logits=True),
                "val_ece": metrics.ece(probs, labels, n_bins=n_bins),
            },
            prog_bar=True,
            sync_dist=True,  # identical on every rank; syncing only silences Lightning's warning
        )
        if hasattr(self.criterion, "update"):
            self.criterion.update(probs.to(self.device), labels.to(self.device))

    def _validates_this_epoch(self) -> bool:
        """Every ``val_every``-th epoch and the last; every epoch for a loss that learns from
        the validation split (its ``update``), whose training would otherwise change."""
        if self.val_inputs is None or self.val_targets is None:
            return False
        epoch = self.current_epoch + 1
        every = self.config.val_every
        return (
            hasattr(self.criterion, "update") or epoch % every == 0 or epoch == self.config.epochs
        )

    # -- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        cfg = self.config
        params = self.model.parameters()
        if cfg.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        elif cfg.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(cfg.milestones), gamma=cfg.lr_decay
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # -- checkpoint extras ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Adaptive losses keep their state (AdaFocal's bins and γ) in buffers, which travel in
        # ``state_dict`` under ``criterion.``; the config makes the file self-describing.
        checkpoint["focalcal_config"] = self.config.to_dict()
