"""The reproduction suites, declared as data: losses × datasets × models × seeds.

A :class:`Suite` lists :class:`DatasetSpec` entries (a dataset, a model, a schedule, OOD sets)
and :class:`LossSpec` entries (the papers' loss columns). :meth:`Suite.plan` expands them into
one :class:`RunSpec` per (dataset, loss, seed), each a complete
:class:`~focalcal.training.config.TrainConfig` trained by the same
:func:`~focalcal.training.run.train` as ``focalcal train``.

Registered suites (``SUITES``):

* ``ci`` (alias ``smoke``): 2 losses (CE, DFL with γ tuned on a 2-point grid) × 1 seed × 3
  epochs on a 1,500/600 subset of the packaged 20 Newsgroups embeddings. About a minute on a CPU.
* ``cpu-text``: 20 Newsgroups MiniLM sentence embeddings, a 2×256 MLP, all ten losses, 3 seeds,
  the ``cpu`` preset (20 epochs). Well under an hour on 2 CPU cores.
* ``cpu-vision``: CIFAR-10 (JPEG q75 copy) with ResNet-8 trained on a fixed, class-stratified
  15,000-image subset of the 45k training split for 20 epochs (the paper's SGD, summed loss and
  clipping; ×0.1 at 10 and 15), OOD = Tiny-ImageNet val (resized) and a generated CIFAR-10-C
  (Gaussian noise, severity 5); Fashion-MNIST with the small CNN on a 15,000-image subset of
  its 55k training split, 15 epochs, OOD = Tiny-ImageNet (grey, 28×28). One seed by default: about an hour per dataset on 2 idle CPU
  cores (docs/results.md); minutes per run on a GPU.
* ``paper``: the papers' protocol (CIFAR-10/100 × ResNet-50/110, WRN-26-10, DenseNet-121;
  Tiny-ImageNet × ResNet-50; 350 / 100 epochs). GPUs; DFL γ from the authors' validation-tuned
  table (``--tune-gamma`` tunes it again).

The losses of every suite (:data:`PAPER_LOSSES`) are the columns of Tao et al. (2023), Table 1:
cross-entropy, Brier, MMCE (weighted, λ = 2), label smoothing 0.05, focal γ = 3, FLSD-53, inverse
focal (γ = 2; the papers do not state it), AdaFocal, Dual Focal Loss (γ chosen on the validation
split from a grid) and DFL-SD (``dual_flsd53``).

Example:
    >>> from focalcal.training.suites import get_suite
    >>> suite = get_suite("cpu-text")
    >>> [loss.key for loss in suite.losses][:4]
    ['ce', 'brier', 'mmce_weighted', 'label_smoothing']
    >>> len(suite.plan("reproduce-cpu-text", seeds=3))
    30
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_save_npz
from .._registry import Registry
from .._validation import check_int
from .config import TrainConfig, make_config

__all__ = [
    "PAPER_LOSSES",
    "SUITES",
    "DatasetSpec",
    "LossSpec",
    "RunSpec",
    "Suite",
    "default_data_dir",
    "get_suite",
]

#: Packaged 20 Newsgroups MiniLM embeddings (float16), the fallback of the text suites.
DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "demo" / "20news-minilm-l6-f16.npz"


def default_data_dir() -> Path:
    """Folder of the real datasets: ``$FOCALCAL_SHARED_DATA``, else ``../shared/data``."""
    return Path(os.environ.get("FOCALCAL_SHARED_DATA", Path("..") / "shared" / "data"))


@dataclass(frozen=True)
class LossSpec:
    """One loss column: registry name, fixed γ or "tune γ on validation", extra options."""

    key: str
    label: str
    loss: str
    gamma: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    tune_gamma: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset × model row group of the report.

    ``roots`` are candidate locations of the data, first existing wins; placeholders:
    ``{data}`` = the shared data folder, ``{demo}`` = the packaged demo embeddings, ``{out}`` =
    the suite's output folder. Empty ``roots`` = the loader's default (``$FOCALCAL_DATA``).
    ``ood`` entries are ``NAME`` or ``NAME:ROOT`` with the same placeholders. ``prepare``
    (optional) derives data into ``{out}/data`` before training (subsets, corruptions); it gets
    the resolved root and the output folder and must be idempotent.
    """

    key: str
    title: str
    dataset: str
    model: str
    roots: tuple[str, ...] = ()
    preset: str = "cpu"
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    model_options: Mapping[str, Any] = field(default_factory=dict)
    ood: tuple[str, ...] = ()
    ood_options: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    prepare: Callable[[str | None, Path], None] | None = None

    def resolve_root(self, data_dir: Path, out_dir: Path) -> str | None:
        """The first candidate of ``roots`` that exists (``None`` when ``roots`` is empty).

        Raises ``FileNotFoundError`` listing the candidates when none exists (a ``{out}`` root
        is produced by ``prepare`` and so is accepted before it exists).
        """
        if not self.roots:
            return None
        paths = [_expand(r, data_dir, out_dir) for r in self.roots]
        for raw, path in zip(self.roots, paths, strict=True):
            if Path(path).exists() or raw.startswith("{out}"):
                return path
        raise FileNotFoundError(
            f"{self.key}: data not found; looked for {paths}. Pass --data-dir to the folder "
            "holding the datasets (or set FOCALCAL_SHARED_DATA)"
        )


@dataclass(frozen=True)
class RunSpec:
    """One training run of a suite: where it lives and its full config (picklable)."""

    dataset_key: str
    loss_key: str
    seed: int
    run_dir: str
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.dataset_key}/{self.loss_key}/seed{self.seed}"

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(dict(self.config))


@dataclass(frozen=True)
class Suite:
    """A declared grid. ``gamma_grid``/``tune_epochs`` drive the γ search of tuned losses
    (each candidate a run of ``tune_epochs`` epochs on seed 1, scored by validation ECE)."""

    name: str
    description: str
    datasets: tuple[DatasetSpec, ...]
    losses: tuple[LossSpec, ...]
    seeds: int = 3
    gamma_grid: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    tune_epochs: int | None = None
    n_bootstrap: int = 1000
    tune_gamma: bool = True

    def select(self, datasets: list[str] | None = None, losses: list[str] | None = None) -> Suite:
        """The suite restricted to the named dataset and loss keys (unknown keys raise)."""
        return dataclasses.replace(
            self,
            datasets=_pick(self.datasets, datasets, "datasets"),
            losses=_pick(self.losses, losses, "losses"),
        )

    def base_config(
        self,
        ds: DatasetSpec,
        loss: LossSpec,
        seed: int,
        *,
        data_dir: Path,
        out_dir: Path,
        gamma: float | None = None,
        **overrides: Any,
    ) -> TrainConfig:
        """The TrainConfig of ``loss`` on ``ds`` (``gamma`` replaces the loss spec's)."""
        values: dict[str, Any] = dict(ds.overrides)
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = make_config(
            ds.dataset,
            ds.model,
            loss.loss,
            preset=ds.preset,
            data_root=ds.resolve_root(data_dir, out_dir),
            dataset_options=dict(ds.dataset_options),
            model_options=dict(ds.model_options),
            loss_options=dict(loss.options),
            ood=[_expand(o, data_dir, out_dir) for o in ds.ood],
            ood_options=dict(ds.ood_options),
            gamma=gamma if gamma is not None else loss.gamma,
            seed=seed,
            **values,
        )
        if loss.tune_gamma and config.gamma is None:  # not searched and not in the DFL table
            config.gamma = UNTUNED_GAMMA
        return config

    def plan(
        self,
        out_dir: str | Path,
        *,
        seeds: int | None = None,
        data_dir: str | Path | None = None,
        gammas: Mapping[tuple[str, str], float] | None = None,
        **overrides: Any,
    ) -> list[RunSpec]:
        """One :class:`RunSpec` per (dataset, loss, seed ∈ 1..seeds), in report order.

        ``gammas[(dataset_key, loss_key)]`` gives the tuned γ of losses with ``tune_gamma``
        (a tuned loss without it keeps its declared γ, or the config's DFL table value).
        ``overrides`` replace config fields of every run (``epochs``, ``devices``, ...).
        """
        n_seeds = check_int(self.seeds if seeds is None else seeds, "seeds", min_value=1)
        out, data = Path(out_dir), Path(data_dir) if data_dir else default_data_dir()
        specs = []
        for ds in self.datasets:
            for loss in self.losses:
                gamma = (gammas or {}).get((ds.key, loss.key))
                for seed in range(1, n_seeds + 1):
                    cfg = self.base_config(
                        ds, loss, seed, data_dir=data, out_dir=out, gamma=gamma, **overrides
                    )
                    run_dir = out / "runs" / ds.key / loss.key / f"seed{seed}"
                    specs.append(RunSpec(ds.key, loss.key, seed, str(run_dir), cfg.to_dict()))
        return specs


def _pick(items: tuple[Any, ...], keys: list[str] | None, what: str) -> tuple[Any, ...]:
    if not keys:
        return items
    known = {item.key: item for item in items}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"{what}: unknown {unknown}; expected some of {sorted(known)}")
    return tuple(item for item in items if item.key in keys)


def _expand(text: str, data_dir: Path, out_dir: Path) -> str:
    return text.format(data=data_dir, demo=DEMO_DATA, out=out_dir)


# --------------------------------------------------------------------------- losses

#: The papers' loss columns (Tao et al. 2023, Table 1; Mukhoti et al. 2020, Table 1).
PAPER_LOSSES: tuple[LossSpec, ...] = (
    LossSpec("ce", "Cross-entropy", "ce"),
    LossSpec("brier", "Brier", "brier"),
    # The papers trained the official MMCE_w, whose pair means are divided again by m², n², mn
    # (REFERENCE §1.5); Kumar et al.'s normalisation collapses under the summed recipe (λ·N·MMCE_w).
    LossSpec(
        "mmce_weighted",
        "MMCE (weighted, λ=2)",
        "mmce_weighted",
        options={"lam": 2.0, "convention": "official"},
    ),
    LossSpec("label_smoothing", "Label smoothing 0.05", "label_smoothing", options={"eps": 0.05}),
    LossSpec("focal", "Focal (γ=3)", "focal", gamma=3.0),
    LossSpec("flsd53", "FLSD-53", "flsd53"),
    LossSpec("inverse_focal", "Inverse focal (γ=2)", "inverse_focal", gamma=2.0),
    LossSpec("adafocal", "AdaFocal", "adafocal"),
    LossSpec("dual_focal", "Dual focal", "dual_focal", tune_gamma=True),
    LossSpec("dual_flsd53", "DFL-SD (dual FLSD-53)", "dual_flsd53"),
)

#: γ of a tuned loss when no search was run and the DFL table has no entry (the table's mode).
UNTUNED_GAMMA = 5.0

SUITES: Registry[Suite] = Registry("suite")


def get_suite(name: str) -> Suite:
    """The suite registered under ``name`` (unknown names list the valid ones)."""
    return SUITES.get(name)


# --------------------------------------------------------------------------- derived data

_CI_TRAIN, _CI_TEST = 1500, 600


def _subset_npz(root: str | None, out_dir: Path) -> None:
    """Write ``{out}/data/ci-subset.npz``: a seeded random subset of the packaged embeddings."""
    target = out_dir / "data" / "ci-subset.npz"
    if target.is_file():
        return
    rng = np.random.default_rng(0)
    with np.load(DEMO_DATA, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for split, n in (("train", _CI_TRAIN), ("test", _CI_TEST)):
        idx = np.sort(rng.permutation(len(arrays[f"y_{split}"]))[:n])
        arrays[f"x_{split}"] = arrays[f"x_{split}"][idx].astype(np.float32)
        arrays[f"y_{split}"] = arrays[f"y_{split}"][idx]
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(target, **arrays)


#: The generated CIFAR-10-C set of ``cpu-vision``: (corruption, severity).
CIFAR_C_GENERATED = ("gaussian_noise", 5)
_CIFAR_C_FILE = "{out}/data/cifar10-c-" + "-".join(map(str, CIFAR_C_GENERATED)) + ".npz"


def _cifar10_c(root: str | None, out_dir: Path) -> None:
    """Write the CIFAR-10-C OOD set of ``cpu-vision``: the suite's CIFAR-10 test images with
    :data:`CIFAR_C_GENERATED` applied by :func:`focalcal.data.corrupt` (the recipe of Hendrycks
    & Dietterich's ``make_cifar_c.py``), as a Keras-style ``.npz`` read through ``npz:PATH``
    (its ``x_train`` holds the first 100 images only to satisfy the format; it is unused)."""
    from ..data import corrupt, get_dataset

    target = Path(_CIFAR_C_FILE.format(out=out_dir))
    if target.is_file():
        return
    test = get_dataset("imagefolder", root=root, split="test")
    name, severity = CIFAR_C_GENERATED
    images = np.asarray(corrupt(test.inputs, name, severity, seed=0))
    labels = test.targets.numpy()
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(
        target,
        x_train=images[:100],
        y_train=labels[:100],
        x_test=images,
        y_test=labels,
        class_names=np.array(test.classes),
    )


# --------------------------------------------------------------------------- suites

_TEXT_ROOTS = ("{data}/20newsgroups/20news-bydate-minilm-l6.npz", "{demo}")

SUITES.register("ci", "smoke")(
    lambda: Suite(
        name="ci",
        description="2 losses × 1 seed × 3 epochs on a subset of the packaged 20NG embeddings",
        datasets=(
            DatasetSpec(
                key="20ng-subset",
                title="20 Newsgroups subset (1,500 train / 600 test MiniLM embeddings)",
                dataset="npz",
                model="mlp",
                roots=("{out}/data/ci-subset.npz",),
                model_options={"hidden": 64, "depth": 1},
                overrides={"epochs": 3, "milestones": [2], "batch_size": 128},
                prepare=_subset_npz,
            ),
        ),
        losses=(PAPER_LOSSES[0], PAPER_LOSSES[8]),
        seeds=1,
        gamma_grid=(2.0, 5.0),
        tune_epochs=2,
        n_bootstrap=50,
    )
)

SUITES.register("cpu-text", "text")(
    lambda: Suite(
        name="cpu-text",
        description="20 Newsgroups MiniLM embeddings, 2×256 MLP, all losses, 3 seeds (CPU)",
        datasets=(
            DatasetSpec(
                key="20ng",
                title="20 Newsgroups (all-MiniLM-L6-v2 sentence embeddings), 2×256 MLP",
                dataset="npz",
                model="mlp",
                roots=_TEXT_ROOTS,
                model_options={"hidden": 256, "depth": 2},
            ),
        ),
        losses=PAPER_LOSSES,
    )
)

SUITES.register("cpu-vision", "vision")(
    lambda: Suite(
        name="cpu-vision",
        description="CIFAR-10 (JPEG q75 copy) ResNet-8 and Fashion-MNIST small CNN, 15k-image "
        "training subsets (CPU, about an hour per dataset)",
        datasets=(
            DatasetSpec(
                key="cifar10-jpeg",
                title="CIFAR-10 (JPEG q75 copy), ResNet-8",
                dataset="imagefolder",
                model="resnet8",
                roots=("{data}/cifar10-jpeg",),
                dataset_options={"val_size": 5000},
                ood=("tiny_imagenet:{data}/tiny-imagenet-200", "npz:" + _CIFAR_C_FILE),
                # sized for a few hours of 2 CPU cores: a fixed 15k-image stratified subset of
                # the 45k training split is small enough for cross-entropy to overfit
                overrides={"train_size": 15000, "epochs": 20, "milestones": [10, 15]},
                prepare=_cifar10_c,
            ),
            DatasetSpec(
                key="fashion-mnist",
                title="Fashion-MNIST, small CNN",
                dataset="fashion_mnist",
                model="small_cnn",
                roots=("/usr/share/datasets/fashion-mnist", "{data}/fashion-mnist"),
                dataset_options={"val_size": 5000},
                ood=("tiny_imagenet:{data}/tiny-imagenet-200",),
                overrides={"train_size": 15000, "epochs": 15, "milestones": [8, 12]},
            ),
        ),
        losses=PAPER_LOSSES,
        seeds=1,  # about an hour per dataset on 2 CPU cores; --seeds 3 for error bars
        gamma_grid=(2.0, 3.0, 5.0),
        tune_epochs=5,
    )
)


def _paper_datasets() -> tuple[DatasetSpec, ...]:
    specs = []
    for dataset in ("cifar10", "cifar100"):
        # Mukhoti et al. (2020) §5: OOD = SVHN and CIFAR-10-C (Gaussian noise) for CIFAR-10 models
        ood = ("svhn", "cifar10_c") if dataset == "cifar10" else ("svhn",)
        for model in ("resnet50", "resnet110", "wide_resnet26_10", "densenet121"):
            specs.append(
                DatasetSpec(
                    key=f"{dataset}-{model}",
                    title=f"{dataset.upper().replace('CIFAR', 'CIFAR-')}, {model}",
                    dataset=dataset,
                    model=model,
                    preset="paper",
                    dataset_options={"val_size": 5000},
                    ood=ood,
                    # the papers' CIFAR-10-C set: Gaussian noise, severity 5 (REFERENCE §4)
                    ood_options={"cifar10_c.corruption": "gaussian_noise", "cifar10_c.severity": 5},
                )
            )
    specs.append(
        DatasetSpec(
            key="tiny_imagenet-resnet50",
            title="Tiny-ImageNet, ResNet-50",
            dataset="tiny_imagenet",
            model="resnet50",
            preset="paper",
            dataset_options={"val_size": 10000},
        )
    )
    return tuple(specs)


SUITES.register("paper")(
    lambda: Suite(
        name="paper",
        description="the papers' protocol: CIFAR-10/100 × ResNet-50/110, WRN-26-10, "
        "DenseNet-121; Tiny-ImageNet ResNet-50 (GPUs)",
        datasets=_paper_datasets(),
        losses=PAPER_LOSSES,
        seeds=1,
        gamma_grid=(2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        tune_epochs=100,
        tune_gamma=False,
    )
)
