"""γ tuning: choose γ of a suite's tuned losses (Dual Focal Loss) on the validation split.

Each candidate γ is one short run (seed 1, trained by the same
:func:`~focalcal.training.runs.execute_run` as every suite run, so finished candidates are
reused). The γ with the lowest validation ECE (before temperature scaling; ties → the smaller
γ) wins, as the DFL paper chose it:

.. math::

    \\hat\\gamma = \\operatorname*{arg\\,min}_{\\gamma \\in G}
    \\mathrm{ECE}_{15}\\bigl(f_\\gamma(x_\\text{val}), y_\\text{val}\\bigr)

Reference: Tao, Dong & Xu, "Dual Focal Loss for Calibration", ICML 2023, §5.

Example (two short runs on the CI suite's data):

    >>> from focalcal.training import tune_gamma
    >>> chosen = tune_gamma("ci", "reproduce-ci")  # doctest: +SKIP
    >>> chosen[("20ng-subset", "dual_focal")]["gamma"]  # doctest: +SKIP
    2.0
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from .._io import atomic_write_text, remove_stale_temporaries
from .._validation import check_int
from .config import TrainConfig
from .evaluate import load_logits
from .launchers import LaunchOptions, launch
from .report import format_search
from .runs import execute_run, run_state
from .study import check_gamma_grid
from .suites import (
    DatasetSpec,
    LossSpec,
    RunSpec,
    Suite,
    get_suite,
    resolve_data_dir,
    suite_from_config,
)

__all__ = ["saved_tuning", "tune_gamma"]

TUNE_FOLDER = "tune-gamma"


def _candidate_specs(
    suite: Suite,
    ds: DatasetSpec,
    loss: LossSpec,
    out: Path,
    data_dir: Path | None,
    grid: Sequence[float],
    overrides: dict[str, Any],
) -> list[RunSpec]:
    specs = []
    for gamma in grid:
        cfg = suite.base_config(
            ds, loss, 1, data_dir=data_dir, out_dir=out, gamma=float(gamma), **overrides
        )
        cfg.ood = []  # the search scores the validation split only
        run_dir = out / TUNE_FOLDER / ds.key / loss.key / f"g{gamma:g}"
        specs.append(RunSpec(ds.key, f"{loss.key}@γ={gamma:g}", 1, str(run_dir), cfg.to_dict()))
    return specs


def _validation_ece(run_dir: Path, n_bins: int) -> float:
    logits = load_logits(run_dir)
    return float(
        metrics.ece(logits["val_logits"], logits["val_labels"], n_bins=n_bins, from_logits=True)
    )


def _choose(ds_key: str, loss_key: str, grid: tuple[float, ...], specs: list[RunSpec]) -> dict:
    """The search record of one (dataset, loss): the grid, each validation ECE, the choice."""
    n_bins = specs[0].config["n_bins"]
    eces = [_validation_ece(Path(s.run_dir), n_bins) for s in specs]
    best = int(np.argmin(eces))  # first minimum: the smaller γ on ties (grid is sorted)
    return {
        "dataset": ds_key,
        "loss": loss_key,
        "grid": list(grid),
        "val_ece": eces,
        "gamma": grid[best],
        "epochs": specs[0].config["epochs"],
        "seed": 1,
        "criterion": f"validation ECE ({n_bins} bins, before temperature scaling)",
    }


def tune_gamma(
    suite: str | Path | Suite | TrainConfig,
    out_dir: str | Path,
    *,
    datasets: list[str] | None = None,
    grid: Sequence[float] | None = None,
    epochs: int | None = None,
    data_dir: str | Path | None = None,
    launcher: str = "inline",
    launch_options: LaunchOptions | None = None,
    echo: Callable[[str], Any] = print,
    **overrides: Any,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Choose γ of every tuned loss of ``suite`` on the validation split.

    ``suite`` is a suite name, a study file (``study.toml``), a :class:`Suite`, or the
    :class:`~focalcal.training.config.TrainConfig` of one run (``focalcal train``'s options:
    its loss is tuned on its dataset, :func:`~focalcal.training.suites.suite_from_config`).

    Each γ of ``grid`` (default: the suite's) is a run of ``epochs`` epochs (default: the
    suite's ``tune_epochs``, else the full schedule) on seed 1; the γ with the lowest validation
    ECE (15 bins, before temperature scaling; ties → smaller γ) is chosen. Candidate runs are
    skipped when finished, like suite runs. Writes ``OUT/tune-gamma/<dataset>/<loss>.json``.
    ``data_dir`` follows :func:`~focalcal.training.suites.resolve_data_dir`.

    Returns ``{(dataset_key, loss_key): {"gamma": γ, "grid": [...], "val_ece": [...], ...}}``.
    """
    if isinstance(suite, TrainConfig):
        suite = suite_from_config(suite)
    suite = get_suite(suite) if isinstance(suite, (str, Path)) else suite
    suite = suite.select(datasets=datasets)
    out = Path(out_dir)
    data = resolve_data_dir(data_dir)
    grid = check_gamma_grid(grid if grid is not None else suite.gamma_grid)
    epochs = epochs if epochs is not None else suite.tune_epochs
    if epochs is not None:
        overrides = {**overrides, "epochs": check_int(epochs, "epochs", min_value=1)}
    tuned = [loss for loss in suite.losses if loss.tune_gamma]
    if not tuned:
        raise ValueError(f"suite {suite.name!r}: none of its losses has a tuned γ")
    suite.prepare_data(out, data)
    jobs = {
        (ds.key, loss.key): _candidate_specs(suite, ds, loss, out, data, grid, overrides)
        for ds in suite.datasets
        for loss in tuned
    }
    pending = [s for specs in jobs.values() for s in specs if run_state(s) != "finished"]
    opts = launch_options or LaunchOptions(out / "submitit", echo=echo)
    launch(pending, partial(execute_run, evaluate=False), launcher, opts)
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for (ds_key, loss_key), specs in jobs.items():
        record = _choose(ds_key, loss_key, grid, specs)
        path = out / TUNE_FOLDER / ds_key / f"{loss_key}.json"
        remove_stale_temporaries(path.parent, recursive=False)
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        echo(f"[tune-gamma] {ds_key}/{loss_key}: {format_search(record)} → γ={record['gamma']:g}")
        chosen[(ds_key, loss_key)] = record
    return chosen


def saved_tuning(suite: Suite, out_dir: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The γ records an earlier :func:`tune_gamma` left in ``OUT/tune-gamma``."""
    found = {}
    for ds in suite.datasets:
        for loss in suite.losses:
            path = Path(out_dir) / TUNE_FOLDER / ds.key / f"{loss.key}.json"
            if loss.tune_gamma and path.is_file():
                found[(ds.key, loss.key)] = json.loads(path.read_text())
    return found
