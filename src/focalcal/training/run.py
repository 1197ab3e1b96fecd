"""Train a run end to end: data, model, loss, Lightning trainer, checkpoints, logits.

A run folder holds everything about one training run::

    RUN/config.json             the full TrainConfig (written before training starts)
    RUN/checkpoints/last.ckpt   Lightning checkpoint, rewritten atomically after every epoch;
                                loads with torch.load(weights_only=True)
    RUN/logs/                   CSV logs (metrics.csv) and TensorBoard events when installed
    RUN/logits.npz              val/test/OOD logits and labels of the final model
    RUN/status.json             {"status": "finished", ...} once training has completed

``evaluate`` then adds ``report.md``, the reliability diagrams and, last, ``metrics.json``.

Every file is written atomically (a temporary beside it, then a rename), so a kill at any
moment leaves each file either complete or absent; the temporaries a kill leaves behind are
removed when the folder is next opened by :func:`train` or ``evaluate_run``. A file that is
nevertheless truncated or corrupt (a full disk, a copy cut short) is reported by
:class:`CorruptRunFileError`, naming the file and the remedy.
"""

from __future__ import annotations

import json
import pickle
import shutil
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import losses, models
from .._io import atomic_save_npz, atomic_write_text, remove_stale_temporaries
from ..data import (
    DATASETS,
    ArrayDataset,
    InMemoryLoader,
    get_dataset,
    get_ood_dataset,
    make_batch_transform,
    stratified_subset_indices,
)
from ..models import check_compatibility, get_model
from .config import RUNTIME_FIELDS, TrainConfig, load_config, save_config
from .predict import predict_logits

__all__ = [
    "RUNTIME_FIELDS",
    "CorruptRunFileError",
    "RunExistsError",
    "Splits",
    "build_loss",
    "build_model",
    "compute_logits",
    "config_differences",
    "is_finished",
    "load_checkpoint",
    "load_model",
    "load_splits",
    "ood_options_for",
    "parse_ood_spec",
    "prepare_run_dir",
    "read_run_config",
    "train",
]

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
LOGITS_FILE = "logits.npz"
CHECKPOINT = Path("checkpoints") / "last.ckpt"


class RunExistsError(FileExistsError):
    """The run folder already holds a run that would be overwritten."""


class CorruptRunFileError(ValueError):
    """A file of a run folder is truncated, corrupt or unsafe to load."""


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` saved in ``RUN/config.json``.

    Raises ``FileNotFoundError`` when the folder has none and :class:`CorruptRunFileError`
    (naming the file) when it is empty, truncated or not a config.
    """
    path = Path(run_dir) / CONFIG_FILE
    try:
        return load_config(path)
    except (TypeError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError included
        raise CorruptRunFileError(
            f"{path}: not a readable run config ({err}); the file is empty, truncated or edited. "
            "Delete the run folder, or train it again with --overwrite"
        ) from None


def load_checkpoint(path: str | Path, remedy: str) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file and ``remedy``.

    A checkpoint holding objects other than tensors and plain containers is refused, never
    unpickled: such a pickle can run arbitrary code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train the run first")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CorruptRunFileError(
            f"{path}: refused to load: the file holds objects other than tensors and plain "
            "containers, which could run code when unpickled (focalcal loads weights only). "
            "If you did not write this file, delete it; " + remedy
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise CorruptRunFileError(
            f"{path}: truncated or corrupt checkpoint ({type(err).__name__}); {remedy}"
        ) from None


def config_differences(saved: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """``["epochs: 3 → 4", ...]``: the fields (but ``RUNTIME_FIELDS``) whose values differ.

    Example:
        >>> config_differences({"epochs": 3, "devices": 1}, {"epochs": 4, "devices": 2})
        ['epochs: 3 → 4']
    """
    keys = sorted((set(saved) | set(given)) - RUNTIME_FIELDS)
    return [
        f"{k}: {saved.get(k)!r} → {given.get(k)!r}" for k in keys if saved.get(k) != given.get(k)
    ]


@dataclass
class Splits:
    """The datasets of a run: train, validation (for T and adaptive losses), test and OOD sets."""

    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
    ood: dict[str, ArrayDataset] = field(default_factory=dict)


def load_splits(config: TrainConfig, *, with_train: bool = True, with_ood: bool = True) -> Splits:
    """Load the train/val/test splits and the OOD sets named in ``config``.

    OOD sets (``NAME`` or ``NAME:ROOT``, with their :func:`ood_options_for` ``config.ood_options``)
    are the test splits, resized and normalised like the training set
    (:func:`focalcal.data.get_ood_dataset`), as the papers do; they are reported under ``NAME``
    (or the stem of ``ROOT`` when given). ``with_train=False``
    skips the training split (``train`` is then the validation split, same normalisation);
    ``with_ood=False`` skips the OOD sets. ``config.train_size`` keeps a class-stratified
    subset of the training split (:func:`focalcal.data.stratified_subset_indices`).
    """
    opts = dict(config.dataset_options)

    def load(split: str) -> ArrayDataset:
        return get_dataset(config.dataset, root=config.data_root, split=split, **opts)

    val = load("val")
    train = load("train") if with_train else val
    if with_train and config.train_size is not None:
        train = train.subset(
            stratified_subset_indices(train.targets.numpy(), config.train_size, name="train_size"),
            split="train",
        )
    test = load("test")
    ood: dict[str, ArrayDataset] = {}
    for spec in config.ood if with_ood else []:
        name, root = parse_ood_spec(spec)
        options = ood_options_for(name, config.ood_options)
        if train.is_image:
            ood_set = get_ood_dataset(name, train, root=root, **options)
        else:
            ood_set = get_dataset(name, root=root, split="test", **options)
            ood_set = ood_set.with_normalization(train.normalization)
        ood[name if root is None else Path(root).stem] = ood_set
    return Splits(train=train, val=val, test=test, ood=ood)


def ood_options_for(name: str, ood_options: Mapping[str, Any]) -> dict[str, Any]:
    """The loader options of the OOD set ``name``: keys without a dot apply to every set,
    ``NAME.KEY`` only to the set ``NAME`` (and wins over a plain ``KEY``).

    Example:
        >>> opts = {"cifar10_c.severity": 5, "cifar10_c.corruption": "gaussian_noise"}
        >>> ood_options_for("cifar10_c", opts), ood_options_for("svhn", opts)
        ({'severity': 5, 'corruption': 'gaussian_noise'}, {})
    """
    options = {k: v for k, v in ood_options.items() if "." not in k}
    prefix = f"{name}."
    options.update({k[len(prefix) :]: v for k, v in ood_options.items() if k.startswith(prefix)})
    return options


def parse_ood_spec(spec: str) -> tuple[str, str | None]:
    """``"svhn"`` → ``("svhn", None)``; ``"npz:other.npz"`` → ``("npz", "other.npz")``."""
    name, sep, root = spec.partition(":")
    if not name or (sep and not root):
        raise ValueError(f"ood: expected NAME or NAME:ROOT, got {spec!r}")
    return name, root or None


def build_model(config: TrainConfig, dataset: ArrayDataset) -> nn.Module:
    """The network of ``config`` sized for ``dataset``, checked for compatibility."""
    options = dict(config.model_options)
    if dataset.is_image:
        options.setdefault("in_channels", dataset.input_shape[0])
    else:
        options.setdefault("in_features", dataset.input_shape[0])
    model = get_model(config.model, num_classes=dataset.num_classes, **options)
    check_compatibility(dataset, model)
    return model


def build_loss(config: TrainConfig) -> nn.Module:
    """The loss of ``config`` with the run's reduction and γ (when one is set)."""
    options = dict(config.loss_options)
    if config.gamma is not None:
        options.setdefault("gamma", config.gamma)
    options.setdefault("reduction", config.loss_reduction)
    try:
        return losses.get_loss(config.loss, **options)
    except TypeError as err:
        raise TypeError(
            f"loss {config.loss!r} does not accept options {sorted(options)}: {err}"
        ) from err


def is_finished(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a completed training run."""
    status = Path(run_dir) / STATUS_FILE
    try:
        return json.loads(status.read_text()).get("status") == "finished"
    except (OSError, ValueError, AttributeError):
        return False  # absent or unreadable: the run is resumed, which rewrites it


def prepare_run_dir(run_dir: str | Path, *, resume: bool, overwrite: bool) -> Path:
    """Check that ``run_dir`` may be used; with ``overwrite`` empty an old focalcal run folder.

    A finished run is never overwritten without ``overwrite``; an unfinished one needs
    ``resume`` (continue) or ``overwrite`` (start again). ``resume`` accepts a finished run too
    (nothing is trained again; the caller completes what is missing, e.g. the evaluation of a
    run killed while it was evaluated). Temporaries left by a killed write are removed.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite: expected at most one of them, got both")
    if not run_dir.exists():
        if resume:
            raise FileNotFoundError(f"--resume: no run folder at {run_dir}")
        return run_dir
    if not run_dir.is_dir():
        raise NotADirectoryError(f"out: expected a folder, got the file {run_dir}")
    has_run = (run_dir / CONFIG_FILE).is_file()
    if has_run:
        remove_stale_temporaries(run_dir)
    if resume:
        if not has_run:
            raise FileNotFoundError(f"--resume: {run_dir} has no {CONFIG_FILE}; nothing to resume")
        return run_dir
    if overwrite:
        if not has_run and any(run_dir.iterdir()):
            raise RunExistsError(
                f"--overwrite: {run_dir} is not a focalcal run folder (no {CONFIG_FILE}); "
                "refusing to delete it"
            )
        shutil.rmtree(run_dir)
        return run_dir
    if is_finished(run_dir):
        raise RunExistsError(
            f"{run_dir} already holds a finished run; pass --overwrite to replace it or choose "
            "another --out"
        )
    if has_run:
        raise RunExistsError(
            f"{run_dir} holds an unfinished run; pass --resume to continue it or --overwrite to "
            "start again"
        )
    if any(run_dir.iterdir()):
        raise RunExistsError(f"out: {run_dir} is not empty; choose an empty or new folder")
    return run_dir


class _TrainLoaderFactory:
    """Factory for the per-rank training loader (created once the trainer knows rank/device)."""

    def __init__(self, dataset: ArrayDataset, config: TrainConfig) -> None:
        self.dataset = dataset
        self.config = config

    def make(self, trainer: Any) -> InMemoryLoader:
        world = trainer.world_size
        if self.config.batch_size % world:
            raise ValueError(
                f"batch_size: the global batch {self.config.batch_size} must be divisible by the "
                f"number of processes {world}"
            )
        return InMemoryLoader(
            self.dataset,
            batch_size=self.config.batch_size // world,
            shuffle=True,
            transform=make_batch_transform(self.dataset, train=True),
            device=trainer.strategy.root_device,
            seed=self.config.seed,
            rank=trainer.global_rank,
            world_size=world,
        )


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    splits: Splits | None = None,
) -> Path | None:
    """Train ``config`` into ``run_dir`` and save the final logits (then ``evaluate_run``).

    With ``resume``, training continues from ``checkpoints/last.ckpt``. ``config`` must be the
    saved ``config.json`` but for ``RUNTIME_FIELDS`` (``devices``, ``precision``, ...):
    a resumed run never silently changes its recipe, and a ``ValueError`` names the fields
    that differ. Resuming a finished run trains nothing and returns ``run_dir``.
    Returns ``run_dir`` on global rank 0 and ``None`` on the other DDP processes (every process
    calls this; only rank 0 writes files).
    """
    from .module import CalibrationModule
    from .trainer import make_trainer, seed_everything

    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT
    # unknown loss / model / dataset names fail before the trainer is built or any data is read
    criterion = build_loss(config)
    models.MODELS.factory(config.model)
    DATASETS.factory(config.dataset)
    if resume:
        _check_resumable(config, run_dir)
    trainer = make_trainer(config, run_dir, checkpoint=ckpt, progress=progress, resume=resume)
    # Only global rank 0 touches the folder: under DDP every process runs this function
    # (Lightning's launcher, torchrun or SLURM start the others), and they must not see
    # rank 0's fresh config.json as "an unfinished run".
    if trainer.global_rank == 0:
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if resume and is_finished(run_dir):
        return run_dir if trainer.global_rank == 0 else None
    seed_everything(config.seed)
    splits = splits or load_splits(config, with_ood=trainer.global_rank == 0)
    model = build_model(config, splits.train)
    module = CalibrationModule(
        model,
        criterion,
        config,
        val_inputs=splits.val.inputs,
        val_targets=splits.val.targets,
        eval_transform=make_batch_transform(splits.val, train=False),
        train_loader=_TrainLoaderFactory(splits.train, config).make,
    )
    if trainer.global_rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            save_config(config, run_dir / CONFIG_FILE)
    start = time.perf_counter()
    trainer.fit(
        module, ckpt_path=str(ckpt) if resume and ckpt.is_file() else None, weights_only=True
    )
    if trainer.global_rank != 0:
        return None
    logits = compute_logits(model, splits, config, device=trainer.strategy.root_device)
    atomic_save_npz(run_dir / LOGITS_FILE, **logits)
    status = {
        "status": "finished",
        "epochs": config.epochs,
        "train_seconds": round(time.perf_counter() - start, 3),
        "world_size": trainer.world_size,
    }
    atomic_write_text(run_dir / STATUS_FILE, json.dumps(status, indent=2) + "\n")
    return run_dir


def _check_resumable(config: TrainConfig, run_dir: Path) -> None:
    """Refuse to resume with another recipe, or from a checkpoint that cannot be loaded."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"--resume: {run_dir} has no {CONFIG_FILE}; nothing to resume")
    differ = config_differences(read_run_config(run_dir).to_dict(), config.to_dict())
    if differ:
        raise ValueError(
            f"--resume: the run in {run_dir} was started with another recipe "
            f"({'; '.join(differ)}, saved → given); resume it with its saved options "
            f"(only {', '.join(sorted(RUNTIME_FIELDS))} may change), or pass --overwrite to "
            "train it again with the new ones"
        )
    ckpt = run_dir / CHECKPOINT
    if ckpt.is_file() and not is_finished(run_dir):
        load_checkpoint(
            ckpt,
            "delete it to resume from the first epoch (--resume), or pass --overwrite to "
            "train the run again",
        )


def compute_logits(
    model: nn.Module, splits: Splits, config: TrainConfig, device: torch.device | str = "cpu"
) -> dict[str, np.ndarray]:
    """Logits and labels of the val/test/OOD splits as float32/int64 arrays (``logits.npz`` keys:
    ``val_logits``, ``val_labels``, ``test_logits``, ``test_labels``, ``ood__<name>_logits``)."""
    out: dict[str, np.ndarray] = {}
    named = [("val", splits.val), ("test", splits.test)]
    named += [(f"ood__{name}", ds) for name, ds in splits.ood.items()]
    for key, ds in named:
        logits = predict_logits(
            model,
            ds.inputs,
            transform=make_batch_transform(ds, train=False),
            batch_size=config.eval_batch_size,
            device=device,
        )
        out[f"{key}_logits"] = logits.cpu().numpy()
        out[f"{key}_labels"] = ds.targets.numpy()
    return out


def load_model(
    run_dir: str | Path, dataset: ArrayDataset | None = None
) -> tuple[nn.Module, TrainConfig]:
    """The final network of a run, from ``checkpoints/last.ckpt`` (``weights_only=True``)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    checkpoint = load_checkpoint(
        run_dir / CHECKPOINT, "train the run again with `focalcal train --overwrite`"
    )
    if dataset is None:
        dataset = load_splits(config, with_train=False).val
    model = build_model(config, dataset)
    prefix = "model."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    model.load_state_dict(state)
    return model, config
