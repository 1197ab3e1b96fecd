"""The Lightning ``Trainer`` of a run: DDP/precision/determinism flags, atomic checkpoints, loggers.

Distribution is Lightning's own: ``devices``, ``num_nodes`` and ``strategy`` go to the Trainer
unchanged, so a run works on one CPU, one GPU, ``torchrun --nproc-per-node N`` and SLURM
(``srun``), which Lightning detects from the environment.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .._io import atomic_torch_save
from .._optional import require
from .config import TrainConfig

L = require("lightning", "train")
from lightning.pytorch.callbacks import Checkpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402
from lightning.pytorch.plugins.io import TorchCheckpointIO  # noqa: E402

__all__ = ["AtomicCheckpointIO", "EpochCheckpoint", "make_trainer", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (Lightning's helper, quiet)."""
    L.seed_everything(seed, workers=True, verbose=False)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints to a temporary file, then ``os.replace``: a SIGKILL mid-write leaves the
    previous checkpoint intact."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"storage_options: not supported, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)


class EpochCheckpoint(Checkpoint):
    """Saves the full training state to one file after every training epoch.

    It runs after the LightningModule's ``on_train_epoch_end`` (where adaptive losses update γ),
    so the checkpoint holds the state the next epoch starts from.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)


def make_trainer(
    config: TrainConfig,
    run_dir: Path,
    *,
    checkpoint: Path,
    progress: bool = True,
    resume: bool = False,
) -> Any:
    """A ``lightning.Trainer`` for ``config`` logging into ``run_dir/logs`` (a resumed run logs
    into ``logs/resume-K`` so that the first attempt's logs are kept)."""
    version = ""
    if resume:
        version = f"resume-{len(list((run_dir / 'logs').glob('resume-*'))) + 1}"
    loggers: list[Any] = [CSVLogger(run_dir, name="logs", version=version)]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(
            TensorBoardLogger(run_dir, name="logs", version=version, default_hp_metric=False)
        )
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,
        deterministic=config.deterministic,
        gradient_clip_val=config.grad_clip,
        gradient_clip_algorithm="norm",
        callbacks=[EpochCheckpoint(checkpoint)],
        plugins=[AtomicCheckpointIO()],
        logger=loggers,
        enable_checkpointing=True,
        enable_progress_bar=progress,
        enable_model_summary=False,
        use_distributed_sampler=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=run_dir,
    )
