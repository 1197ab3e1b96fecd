"""The suites of runs: losses × datasets × models × seeds, declared in TOML study files.

A :class:`Suite` lists :class:`DatasetSpec` entries (a dataset, a model, a schedule, OOD sets)
and :class:`LossSpec` entries (the loss columns). :meth:`Suite.plan` expands them into one
:class:`RunSpec` per (dataset, loss, seed), each a complete
:class:`~focalcal.training.config.TrainConfig` trained by the same
:func:`~focalcal.training.run.train` as ``focalcal train``. :func:`load_study` reads a suite
from a study file (:mod:`focalcal.training.study`); :func:`get_suite` takes a registered name
or the path of such a file.

Registered suites (``SUITES``, the files of ``focalcal/training/studies/``):

* ``ci`` (alias ``smoke``): 2 losses (CE, DFL with γ tuned on a 2-point grid) × 1 seed × 3
  epochs on a 1,500/600 subset of the packaged 20 Newsgroups embeddings. About a minute on a CPU.
* ``cpu-text``: 20 Newsgroups MiniLM sentence embeddings, a 2×256 MLP, all fourteen losses,
  3 seeds, the ``cpu`` preset (20 epochs). Under an hour on 2 CPU cores.
* ``cpu-vision``: CIFAR-10 (JPEG q75 copy) with ResNet-8 trained on a fixed, class-stratified
  15,000-image subset of the 45k training split for 20 epochs (the paper's SGD, summed loss and
  clipping; ×0.1 at 10 and 15), OOD = Tiny-ImageNet val (resized) and a generated CIFAR-10-C
  (Gaussian noise, severity 5); Fashion-MNIST with the small CNN on a 15,000-image subset of
  its 55k training split, 15 epochs, OOD = Tiny-ImageNet (grey, 28×28). One seed by default.
* ``cpu-vision-overconfident``: the same CIFAR-10 set and ResNet-8 on a 2,000-image subset for
  60 epochs (×0.1 at 30 and 45), where cross-entropy is clearly over-confident (the papers'
  regime); 3 seeds, DFL's γ chosen from {2, 3, 5} (and MbLS's m, MDCA's β from their grids)
  by full-length runs. About three hours on 2 CPU cores with the MbLS margin and MDCA β
  searches (4 to 5 min per run, one run per core).
* ``paper``: the papers' protocol (CIFAR-10/100 × ResNet-50/110, WRN-26-10, DenseNet-121;
  Tiny-ImageNet × ResNet-50; 350 / 100 epochs). GPUs; DFL γ from the authors' validation-tuned
  table, MbLS m = 10 and MDCA β = 1 (``--tune-gamma`` searches all three again).

The losses of the built-in suites but ``ci`` and ``demo`` are the loss set ``"paper"``
(:data:`PAPER_LOSSES`), the columns of Tao et al. (2023), Table 1: cross-entropy, Brier, MMCE
(weighted, λ = 2), label smoothing 0.05, focal γ = 3, FLSD-53, inverse focal (γ = 2; the papers
do not state it), AdaFocal, Dual Focal Loss (γ chosen on the validation split from a grid) and
DFL-SD (``dual_flsd53``); then the loss set ``"recent"``: MbLS (α = 0.1, official divisor,
margin chosen on the validation split from {5, 10, 15}), CE + MDCA (β chosen from {1, 5, 10}),
ACLS and BSCE-GRA (γ = 1), at their papers' settings (without a search: m = 10, β = 1).

Example:
    >>> from focalcal.training.suites import get_suite
    >>> suite = get_suite("cpu-text")
    >>> [loss.key for loss in suite.losses][:4]
    ['ce', 'brier', 'mmce_weighted', 'label_smoothing']
    >>> len(suite.plan("reproduce-cpu-text", seeds=3))
    42
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_save_npz
from .._registry import Registry
from .._validation import check_int
from .config import TrainConfig, make_config
from .study import RECIPE_FIELDS, STUDIES_DIR, read_study, read_toml

__all__ = [
    "PAPER_LOSSES",
    "SUITES",
    "DatasetSpec",
    "LossSpec",
    "RunSpec",
    "Suite",
    "get_suite",
    "load_study",
    "resolve_data_dir",
    "suite_from_config",
]

#: Packaged 20 Newsgroups MiniLM embeddings (float16), the fallback of the text suites.
DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "demo" / "20news-minilm-l6-f16.npz"

#: The environment variable naming the folder of the datasets (one sub-folder per dataset),
#: shared with the dataset loaders' default roots.
DATA_ENV = "FOCALCAL_DATA"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The folder of the datasets: ``data_dir`` if given, else ``$FOCALCAL_DATA``, else ``None``
    (then only the datasets with a packaged copy, or a loader's own default, are found).

    Example:
        >>> import os
        >>> os.environ["FOCALCAL_DATA"] = "/data"
        >>> str(resolve_data_dir("my-data")), str(resolve_data_dir())
        ('my-data', '/data')
        >>> del os.environ["FOCALCAL_DATA"]
    """
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


@dataclass(frozen=True)
class LossSpec:
    """One loss column: registry name, fixed γ, extra options, and the option tuned on the
    validation split, if any.

    ``tune_option`` names the tuned option and ``tune_grid`` its candidates; ``tune_grid`` is
    ``None`` for γ searched on the suite's ``gamma_grid``. ``tune_gamma=True`` is that case:
    it sets ``tune_option = "gamma"``, and ``tune_gamma`` is true whenever γ is the tuned option.

    Example:
        >>> LossSpec("dfl", "DFL", "dual_focal", tune_gamma=True).tune_option
        'gamma'
        >>> mbls = LossSpec("mbls", "MbLS", "mbls", tune_option="margin", tune_grid=(5.0, 10.0))
        >>> mbls.tuned, mbls.tune_gamma, mbls.grid((1.0, 2.0))
        (True, False, (5.0, 10.0))
    """

    key: str
    label: str
    loss: str
    gamma: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    tune_gamma: bool = False
    tune_option: str | None = None
    tune_grid: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.tune_gamma and self.tune_option not in (None, "gamma"):
            raise ValueError(
                f"loss {self.key!r}: tune_gamma=True tunes γ, got tune_option={self.tune_option!r}"
            )
        option = "gamma" if self.tune_gamma else self.tune_option
        if option is None and self.tune_grid is not None:
            raise ValueError(f"loss {self.key!r}: tune_grid without a tune_option")
        if option not in (None, "gamma") and self.tune_grid is None:
            raise ValueError(f"loss {self.key!r}: tune_option {option!r} needs a tune_grid")
        object.__setattr__(self, "tune_option", option)
        object.__setattr__(self, "tune_gamma", option == "gamma")

    @property
    def tuned(self) -> bool:
        """Whether an option of this loss is chosen on the validation split."""
        return self.tune_option is not None

    def grid(self, gamma_grid: tuple[float, ...]) -> tuple[float, ...]:
        """The candidates of the tuned option: its own grid, else ``gamma_grid`` (γ only)."""
        return self.tune_grid if self.tune_grid is not None else tuple(gamma_grid)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset × model row group of the report.

    ``roots`` are candidate locations of the data, first existing wins; placeholders:
    ``{data}`` = the data folder (:func:`resolve_data_dir`), ``{demo}`` = the packaged demo
    embeddings, ``{out}`` = the suite's output folder; ``{default}``, or empty ``roots``, is the
    loader's own default location (``$FOCALCAL_DATA/<name>``, ...). ``ood`` entries are
    ``NAME`` or ``NAME:ROOT`` with the same placeholders. ``prepare`` (optional) names a step
    of :data:`PREPARE_STEPS` that derives data into ``{out}/data`` before training (subsets,
    corruptions); it gets the resolved root and the output folder and is idempotent.
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
    prepare: str | None = None

    def resolve_root(self, data_dir: Path | None, out_dir: Path) -> str | None:
        """The first candidate of ``roots`` that exists (``None``: the loader's default).

        Raises ``FileNotFoundError`` listing the candidates when none exists (a ``{out}`` root
        is produced by ``prepare`` and so is accepted before it exists).
        """
        looked = []
        for raw in self.roots or ("{default}",):
            if raw == "{default}":
                return None
            if "{data}" in raw and data_dir is None:
                looked.append(raw)
                continue
            path = _expand(raw, data_dir, out_dir)
            if Path(path).exists() or raw.startswith("{out}"):
                return path
            looked.append(path)
        raise FileNotFoundError(
            f"{self.key}: data not found; looked for {looked}. Pass --data-dir (data_dir=) to "
            f"the folder holding the datasets, or set {DATA_ENV}"
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
    """A declared grid. ``tune_epochs`` drives the validation search of every tuned loss
    (each candidate a run of ``tune_epochs`` epochs on seed 1, scored by validation ECE);
    ``gamma_grid`` holds the candidates of the losses with ``tune_gamma``; ``tune_gamma``
    (the suite's) says whether :func:`~focalcal.training.reproduce` runs the searches first."""

    name: str
    description: str
    datasets: tuple[DatasetSpec, ...]
    losses: tuple[LossSpec, ...]
    seeds: int = 3
    gamma_grid: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    tune_epochs: int | None = None
    n_bootstrap: int = 1000
    tune_gamma: bool = True
    ts_criterion: str = "ece"

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
        data_dir: Path | None,
        out_dir: Path,
        gamma: float | None = None,
        chosen: Mapping[str, float] | None = None,
        **overrides: Any,
    ) -> TrainConfig:
        """The TrainConfig of ``loss`` on ``ds``: ``gamma`` replaces the loss spec's γ, and
        ``chosen`` (``{option: value}``, the tuned option's choice) set ``config.gamma`` for
        ``"gamma"`` and ``config.loss_options`` for any other option."""
        loss_values = dict(chosen or {})
        gamma = loss_values.pop("gamma", gamma)
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
            loss_options={**loss.options, **loss_values},
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
        tuned: Mapping[tuple[str, str], Mapping[str, float]] | None = None,
        gammas: Mapping[tuple[str, str], float] | None = None,
        **overrides: Any,
    ) -> list[RunSpec]:
        """One :class:`RunSpec` per (dataset, loss, seed ∈ 1..seeds), in report order.

        ``tuned[(dataset_key, loss_key)]`` is ``{option: value}``, the value the validation
        search chose for the loss's tuned option (:meth:`base_config` puts γ into
        ``config.gamma``, any other option into ``config.loss_options``). A tuned loss without
        an entry keeps its declared γ or the config's DFL table value, and for another option
        the loss's own default. ``gammas[(dataset_key, loss_key)] = γ`` is the older spelling
        of ``tuned[...] = {"gamma": γ}`` (``tuned`` wins where both name a loss).
        ``overrides`` replace config fields of every run (``epochs``, ``devices``, ...).
        ``data_dir`` follows :func:`resolve_data_dir`.
        """
        n_seeds = check_int(self.seeds if seeds is None else seeds, "seeds", min_value=1)
        out, data = Path(out_dir), resolve_data_dir(data_dir)
        chosen = {key: {"gamma": g} for key, g in (gammas or {}).items()}
        chosen.update({key: dict(v) for key, v in (tuned or {}).items()})
        specs = []
        for ds in self.datasets:
            for loss in self.losses:
                values = chosen.get((ds.key, loss.key))
                for seed in range(1, n_seeds + 1):
                    cfg = self.base_config(
                        ds, loss, seed, data_dir=data, out_dir=out, chosen=values, **overrides
                    )
                    run_dir = out / "runs" / ds.key / loss.key / f"seed{seed}"
                    specs.append(RunSpec(ds.key, loss.key, seed, str(run_dir), cfg.to_dict()))
        return specs

    def prepare_data(self, out_dir: Path, data_dir: Path | None) -> None:
        """Derive the data of every dataset with a ``prepare`` step into ``OUT/data``."""
        for ds in self.datasets:
            if ds.prepare is not None:
                out_root = bool(ds.roots) and ds.roots[0].startswith("{out}")
                step = PREPARE_STEPS.factory(ds.prepare)
                step(None if out_root else ds.resolve_root(data_dir, out_dir), out_dir)


def _pick(items: tuple[Any, ...], keys: list[str] | None, what: str) -> tuple[Any, ...]:
    if not keys:
        return items
    known = {item.key: item for item in items}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"{what}: unknown {unknown}; expected some of {sorted(known)}")
    return tuple(item for item in items if item.key in keys)


def _expand(text: str, data_dir: Path | None, out_dir: Path) -> str:
    if "{data}" in text and data_dir is None:
        raise FileNotFoundError(
            f"{text!r} needs the data folder: pass --data-dir (data_dir=) or set {DATA_ENV}"
        )
    return text.format(data=data_dir, demo=DEMO_DATA, out=out_dir)


#: γ of a tuned loss when no search was run and the DFL table has no entry (the table's mode).
UNTUNED_GAMMA = 5.0


def load_study(path: str | Path) -> Suite:
    """The :class:`Suite` declared in the study file at ``path``, checked before anything runs
    (:func:`focalcal.training.study.read_study`)."""
    study = read_study(path)
    datasets = tuple(
        DatasetSpec(
            key=t["key"],
            title=t.get("title", t["key"]),
            dataset=t["dataset"],
            model=t["model"],
            roots=tuple(t["roots"]),
            preset=t.get("preset", "cpu"),
            dataset_options=t.get("dataset_options", {}),
            model_options=t.get("model_options", {}),
            ood=tuple(t["ood"]),
            ood_options=t.get("ood_options", {}),
            overrides=t["overrides"],
            prepare=t.get("prepare"),
        )
        for t in study["datasets"]
    )
    for ds in datasets:
        if ds.prepare is not None:
            PREPARE_STEPS.factory(ds.prepare)  # unknown step names fail here
    fields = ("seeds", "n_bootstrap", "tune_epochs", "tune_gamma", "ts_criterion")
    return Suite(
        name=study["name"],
        description=study.get("description", f"study {study['name']} ({path})"),
        datasets=datasets,
        losses=tuple(_loss_spec(t) for t in study["losses"]),
        **{k: study[k] for k in fields if k in study},
        **({"gamma_grid": tuple(map(float, study["gamma_grid"]))} if "gamma_grid" in study else {}),
    )


def suite_from_config(
    config: TrainConfig,
    *,
    gamma_grid: tuple[float, ...] | None = None,
    tune_epochs: int | None = None,
) -> Suite:
    """A one-dataset, one-loss suite whose runs are ``config`` (one per seed), its loss tuned:
    what ``focalcal tune-gamma`` runs on ``train``'s options.

    Example:
        >>> from focalcal.training import make_config
        >>> cfg = make_config("npz", "mlp", "dual_focal", preset="cpu", data_root="news.npz")
        >>> suite = suite_from_config(cfg, gamma_grid=(2.0, 5.0))
        >>> [(d.key, loss.key, loss.tune_gamma) for d in suite.datasets for loss in suite.losses]
        [('npz-mlp', 'dual_focal', True)]
    """
    ds = DatasetSpec(
        key=f"{config.dataset}-{config.model}",
        title=f"{config.dataset}, {config.model}",
        dataset=config.dataset,
        model=config.model,
        roots=(config.data_root,) if config.data_root else (),
        preset=config.preset,
        dataset_options=dict(config.dataset_options),
        model_options=dict(config.model_options),
        ood=tuple(config.ood),
        ood_options=dict(config.ood_options),
        overrides={k: getattr(config, k) for k in sorted(RECIPE_FIELDS)},
    )
    loss = LossSpec(config.loss, config.loss, config.loss, None, dict(config.loss_options), True)
    grid = {"gamma_grid": tuple(gamma_grid)} if gamma_grid is not None else {}
    return Suite(
        name=ds.key, description=f"{config.loss} on {ds.title}", datasets=(ds,), losses=(loss,),
        seeds=1, tune_epochs=tune_epochs, **grid,
    )  # fmt: skip


def _loss_spec(table: dict[str, Any]) -> LossSpec:
    return LossSpec(
        key=table["key"],
        label=table.get("label", table["key"]),
        loss=table["loss"],
        gamma=float(table["gamma"]) if "gamma" in table else None,
        options=table.get("options", {}),
        tune_gamma=table.get("tune_gamma", False),
        tune_option=table["tune"]["option"] if "tune" in table else None,
        tune_grid=tuple(map(float, table["tune"]["grid"])) if "tune" in table else None,
    )


SUITES: Registry[Suite] = Registry("suite")

#: The papers' loss columns (Tao et al. 2023, Table 1; Mukhoti et al. 2020, Table 1).
PAPER_LOSSES: tuple[LossSpec, ...] = tuple(
    _loss_spec({"loss": t["key"], **t})
    for t in read_toml(STUDIES_DIR / "paper-losses.toml")["losses"]
)


def _register_builtin_studies() -> None:
    for path in sorted(STUDIES_DIR.glob("*.toml")):
        head = read_toml(path)
        if "datasets" in head:  # a suite (the loss sets have no datasets)
            SUITES.register(head["name"], *head.get("aliases", ()))(partial(load_study, path))


_register_builtin_studies()


def get_suite(name: str | Path) -> Suite:
    """The suite registered under ``name``, or the study in the file ``name`` (a path ending
    in ``.toml``); unknown names list the valid ones."""
    if isinstance(name, Path) or str(name).endswith(".toml"):
        return load_study(name)
    return SUITES.get(name)


# --------------------------------------------------------------------------- derived data

#: ``name -> step(root, out_dir)`` deriving a dataset into ``OUT/data`` (``prepare = "..."``).
PREPARE_STEPS: Registry[None] = Registry("prepare step")


_CI_TRAIN, _CI_TEST = 1500, 600


@PREPARE_STEPS.register("ci-subset")
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


@PREPARE_STEPS.register("cifar10-c")
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
