"""Validation search: choose the tuned option of each of a suite's tuned losses (DFL's γ,
MbLS's margin, MDCA's β, ...) on the validation split.

A loss is tuned when its study table says ``tune_gamma = true`` (γ from the suite's
``gamma_grid``) or ``tune = { option = "margin", grid = [5.0, 10.0, 15.0] }`` (any numeric
option, from its own grid). Each candidate value is one short run (seed 1, trained by the same
:func:`~focalcal.training.runs.execute_run` as every suite run, so finished candidates are
reused). The value with the lowest validation ECE (before temperature scaling; ties → the first
of the grid) wins, as the DFL paper chose γ and the MbLS and MDCA papers their margin and β:

.. math::

    \\hat\\theta = \\operatorname*{arg\\,min}_{\\theta \\in G}
    \\mathrm{ECE}_{15}\\bigl(f_\\theta(x_\\text{val}), y_\\text{val}\\bigr)

Every search of a suite lives in one folder, ``OUT/tune-gamma`` (:data:`TUNE_FOLDER`): the
record of a loss is ``OUT/tune-gamma/<dataset>/<loss>.json`` and its candidates are
``OUT/tune-gamma/<dataset>/<loss>/g<γ>`` for γ and ``.../<loss>/<option>=<value>`` for any
other option. The folder kept the name it had when γ was the only tuned hyper-parameter, so
that the γ searches of existing output folders are found and reused as they are; a loss has
one tuned option, so its record and its candidates cannot collide with another search's.

References: Tao, Dong & Xu, "Dual Focal Loss for Calibration", ICML 2023, §5; Liu et al.,
"The Devil is in the Margin", CVPR 2022; Hebbalaguppe et al., "A Stitch in Time Saves Nine"
(MDCA), CVPR 2022.

Example (two short runs on the CI suite's data):

    >>> from focalcal.training import tune_losses
    >>> chosen = tune_losses("ci", "reproduce-ci")  # doctest: +SKIP
    >>> chosen[("20ng-subset", "dual_focal")]["value"]  # doctest: +SKIP
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
from .report import format_search, option_symbol
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

__all__ = ["saved_tuning", "tune_gamma", "tune_losses", "tuned_values"]

#: The folder of every validation search of a suite (named when γ was the only tuned option).
TUNE_FOLDER = "tune-gamma"


def candidate_name(option: str, value: float) -> str:
    """The folder of one candidate: ``g<γ>`` for γ (the historical layout), else
    ``<option>=<value>``.

    Example:
        >>> candidate_name("gamma", 2.0), candidate_name("margin", 10.0)
        ('g2', 'margin=10')
    """
    return f"g{value:g}" if option == "gamma" else f"{option}={value:g}"


def _candidate_specs(
    suite: Suite,
    ds: DatasetSpec,
    loss: LossSpec,
    out: Path,
    data_dir: Path | None,
    grid: Sequence[float],
    overrides: dict[str, Any],
) -> list[RunSpec]:
    option = loss.tune_option
    assert option is not None  # only tuned losses are searched
    specs = []
    for value in grid:
        cfg = suite.base_config(
            ds, loss, 1, data_dir=data_dir, out_dir=out, chosen={option: float(value)},
            **overrides,
        )  # fmt: skip
        cfg.ood = []  # the search scores the validation split only
        name = candidate_name(option, value)
        run_dir = out / TUNE_FOLDER / ds.key / loss.key / name
        label = f"{loss.key}@{option_symbol(option)}={value:g}"
        specs.append(RunSpec(ds.key, label, 1, str(run_dir), cfg.to_dict()))
    return specs


def _validation_ece(run_dir: Path, n_bins: int) -> float:
    logits = load_logits(run_dir)
    return float(
        metrics.ece(logits["val_logits"], logits["val_labels"], n_bins=n_bins, from_logits=True)
    )


def _choose(
    ds_key: str, loss: LossSpec, grid: tuple[float, ...], specs: list[RunSpec]
) -> dict[str, Any]:
    """The search record of one (dataset, loss): the option, the grid, each validation ECE,
    the choice (``"value"``; γ records repeat it as ``"gamma"``, their historical key)."""
    n_bins = specs[0].config["n_bins"]
    eces = [_validation_ece(Path(s.run_dir), n_bins) for s in specs]
    best = grid[int(np.argmin(eces))]  # the first minimum: ties → the first of the grid
    record: dict[str, Any] = {
        "dataset": ds_key,
        "loss": loss.key,
        "option": loss.tune_option,
        "grid": list(grid),
        "val_ece": eces,
        "value": best,
    }
    if loss.tune_option == "gamma":
        record["gamma"] = best
    return record | {
        "epochs": specs[0].config["epochs"],
        "seed": 1,
        "criterion": f"validation ECE ({n_bins} bins, before temperature scaling)",
    }


def _prepared(suite: str | Path | Suite | TrainConfig, datasets: list[str] | None) -> Suite:
    if isinstance(suite, TrainConfig):
        suite = suite_from_config(suite)
    suite = get_suite(suite) if isinstance(suite, (str, Path)) else suite
    return suite.select(datasets=datasets)


def tune_losses(
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
    """Choose the tuned option of every tuned loss of ``suite`` on the validation split.

    ``suite`` is a suite name, a study file (``study.toml``), a :class:`Suite`, or the
    :class:`~focalcal.training.config.TrainConfig` of one run (``focalcal train``'s options:
    its γ is tuned on its dataset, :func:`~focalcal.training.suites.suite_from_config`).

    Each value of a loss's grid is a run of ``epochs`` epochs (default: the suite's
    ``tune_epochs``, else the full schedule) on seed 1; the value with the lowest validation
    ECE (15 bins, before temperature scaling; ties → the first of the grid) is chosen. The grid
    is the loss's own (``tune = {option, grid}``), or for ``tune_gamma`` losses ``grid``
    (default: the suite's ``gamma_grid``). Candidate runs are skipped when finished, like suite
    runs. Writes ``OUT/tune-gamma/<dataset>/<loss>.json`` (see the module docstring for the
    candidate folders). ``data_dir`` follows :func:`~focalcal.training.suites.resolve_data_dir`.

    Returns ``{(dataset_key, loss_key): {"option": name, "value": v, "grid": [...],
    "val_ece": [...], ...}}`` (γ records also hold ``"gamma": v``).
    """
    suite = _prepared(suite, datasets)
    out = Path(out_dir)
    data = resolve_data_dir(data_dir)
    gamma_grid = check_gamma_grid(grid if grid is not None else suite.gamma_grid)
    epochs = epochs if epochs is not None else suite.tune_epochs
    if epochs is not None:
        overrides = {**overrides, "epochs": check_int(epochs, "epochs", min_value=1)}
    tuned = [loss for loss in suite.losses if loss.tuned]
    if not tuned:
        raise ValueError(
            f"suite {suite.name!r}: none of its losses is tuned (tune_gamma = true or tune = ...)"
        )
    suite.prepare_data(out, data)
    jobs = [
        (
            ds.key,
            loss,
            _candidate_specs(suite, ds, loss, out, data, loss.grid(gamma_grid), overrides),
        )
        for ds in suite.datasets
        for loss in tuned
    ]
    pending = [s for *_, specs in jobs for s in specs if run_state(s) != "finished"]
    opts = launch_options or LaunchOptions(out / "submitit", echo=echo)
    launch(pending, partial(execute_run, evaluate=False), launcher, opts)
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for ds_key, loss, specs in jobs:
        record = _choose(ds_key, loss, loss.grid(gamma_grid), specs)
        path = out / TUNE_FOLDER / ds_key / f"{loss.key}.json"
        remove_stale_temporaries(path.parent, recursive=False)
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        choice = f"{option_symbol(record['option'])}={record['value']:g}"
        echo(f"[tune-gamma] {ds_key}/{loss.key}: {format_search(record)} → {choice}")
        chosen[(ds_key, loss.key)] = record
    return chosen


#: The name of :func:`tune_losses` from when γ was the only tuned option.
tune_gamma = tune_losses


def saved_tuning(suite: Suite, out_dir: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The search records an earlier :func:`tune_losses` left in ``OUT/tune-gamma``, for the
    tuned losses of ``suite`` (a record of another option than the loss's is ignored). Records
    written before options other than γ could be tuned get ``"option": "gamma"`` and
    ``"value"`` = their ``"gamma"``."""
    found = {}
    for ds in suite.datasets:
        for loss in suite.losses:
            path = Path(out_dir) / TUNE_FOLDER / ds.key / f"{loss.key}.json"
            if not (loss.tuned and path.is_file()):
                continue
            record = json.loads(path.read_text())
            record.setdefault("option", "gamma")
            record.setdefault("value", record.get("gamma"))
            if record["option"] == loss.tune_option:
                found[(ds.key, loss.key)] = record
    return found


def tuned_values(
    records: dict[tuple[str, str], dict[str, Any]],
) -> dict[tuple[str, str], dict[str, float]]:
    """``{(dataset, loss): {option: value}}`` of search records, as
    :meth:`~focalcal.training.suites.Suite.plan` takes them (``tuned=``).

    Example:
        >>> tuned_values({("news", "mbls"): {"option": "margin", "value": 10.0}})
        {('news', 'mbls'): {'margin': 10.0}}
    """
    return {key: {rec["option"]: rec["value"]} for key, rec in records.items()}
