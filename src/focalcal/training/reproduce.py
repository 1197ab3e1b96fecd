"""``focalcal reproduce``: run a declared suite and publish its tables.

:func:`reproduce` takes a suite (:mod:`focalcal.training.suites`), and

1. derives any data the suite needs (subsets, generated CIFAR-10-C) into ``OUT/data``;
2. picks the tuned option of each tuned loss (DFL's γ, MbLS's margin, MDCA's β) on the
   validation split (:func:`focalcal.training.tuning.tune_losses`);
3. trains every (dataset, loss, seed) run with :func:`focalcal.training.run.train` — the code of
   ``focalcal train`` — and evaluates it with :func:`focalcal.training.evaluate.evaluate_run`,
   through :func:`focalcal.training.runs.execute_run`: finished runs whose config matches are
   skipped and interrupted ones resumed, so an interrupted suite continues where it stopped;
4. writes ``OUT/results.md`` and ``OUT/results.json`` (atomically): per dataset, the papers'
   table as mean ± std over seeds with seed-averaged 95% bootstrap intervals
   (:mod:`focalcal.training.aggregate`, :func:`focalcal.training.report.format_results`), OOD
   AUROC, the validation searches and overlaid reliability diagrams.

The runs are independent jobs, executed by a launcher (:mod:`focalcal.training.launchers`).
:func:`plan_runs` lists the runs of an invocation and their states without training anything.

Example (the CI suite, about a minute on a CPU):

    >>> from focalcal.training import reproduce
    >>> report = reproduce("ci", "reproduce-ci")  # doctest: +SKIP
    >>> print(report.read_text())                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_text, remove_stale_temporaries
from .._validation import check_choice, check_int
from .aggregate import aggregate, overlay_diagrams
from .launchers import LAUNCHERS, LaunchOptions, launch
from .report import format_results, option_symbol
from .runs import ACTIONS, execute_run, is_evaluated, run_state
from .suites import RunSpec, Suite, get_suite, resolve_data_dir
from .tuning import saved_tuning, tune_losses, tuned_values

__all__ = ["RunPlan", "machine_info", "plan_runs", "reproduce"]

RESULTS_MD = "results.md"
RESULTS_JSON = "results.json"


@dataclass(frozen=True)
class RunPlan:
    """The runs of one invocation: ``states[i]`` is ``"new"``, ``"partial"`` or ``"finished"``
    for ``specs[i]``; ``searched`` names the tuned losses whose option the validation search
    picks first."""

    suite: Suite
    out_dir: Path
    specs: tuple[RunSpec, ...]
    states: tuple[str, ...]
    searched: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """One line per run, ``STATE NAME (γ=...)``, then the search note when there is one."""
        lines = []
        for spec, state in zip(self.specs, self.states, strict=True):
            gamma = spec.config["gamma"]
            lines.append(
                f"{state:9s} {spec.name}" + (f" (γ={gamma:g})" if gamma is not None else "")
            )
        losses = {loss.key: loss for loss in self.suite.losses}
        searched = [losses[key] for key in self.searched]
        if searched and all(loss.tune_grid is None for loss in searched):  # γ on the suite grid
            grid = list(self.suite.gamma_grid)
            lines.append(f"(γ of {list(self.searched)} is chosen by the γ search first: {grid})")
        elif searched:
            grids = ", ".join(
                f"{loss.key} {option_symbol(loss.tune_option or 'gamma')} ∈ "
                f"{list(loss.grid(self.suite.gamma_grid))}"
                for loss in searched
            )
            lines.append(f"(chosen by the validation search first: {grids})")
        return lines


def _selected(
    suite: str | Path | Suite, datasets: list[str] | None, losses: list[str] | None
) -> Suite:
    suite = get_suite(suite) if isinstance(suite, (str, Path)) else suite
    return suite.select(datasets=datasets, losses=losses)


def _out(suite: Suite, out_dir: str | Path | None) -> Path:
    return Path(out_dir) if out_dir is not None else Path(f"reproduce-{suite.name}")


def plan_runs(
    suite: str | Path | Suite,
    out_dir: str | Path | None = None,
    *,
    seeds: int | None = None,
    datasets: list[str] | None = None,
    losses: list[str] | None = None,
    data_dir: str | Path | None = None,
    tune: bool | None = None,
    **overrides: Any,
) -> RunPlan:
    """The runs :func:`reproduce` would execute with these arguments, and their states; trains
    nothing (``focalcal reproduce --dry-run``). The tuned option of a tuned loss is the value of
    an earlier search in ``OUT/tune-gamma`` when there is one. Raises
    :class:`~focalcal.training.runs.RunMismatchError` like :func:`reproduce` would.
    """
    suite = _selected(suite, datasets, losses)
    out = _out(suite, out_dir)
    chosen = tuned_values(saved_tuning(suite, out))
    specs = suite.plan(out, seeds=seeds, data_dir=data_dir, tuned=chosen, **overrides)
    first = suite.datasets[0].key if suite.datasets else None
    searched = ()
    if suite.tune_gamma if tune is None else tune:
        searched = tuple(x.key for x in suite.losses if x.tuned and (first, x.key) not in chosen)
    return RunPlan(suite, out, tuple(specs), tuple(run_state(s) for s in specs), searched)


def reproduce(
    suite: str | Path | Suite,
    out_dir: str | Path | None = None,
    *,
    seeds: int | None = None,
    datasets: list[str] | None = None,
    losses: list[str] | None = None,
    launcher: str = "inline",
    data_dir: str | Path | None = None,
    n_bootstrap: int | None = None,
    run_bootstrap: int = 0,
    ts_criterion: str | None = None,
    tune: bool | None = None,
    gamma_grid: Sequence[float] | None = None,
    tune_epochs: int | None = None,
    timeout_min: int = 60 * 24,
    executor_options: dict[str, Any] | None = None,
    command: str | None = None,
    echo: Callable[[str], Any] = print,
    **overrides: Any,
) -> Path:
    """Run ``suite`` (a name, a study file ``study.toml`` or a :class:`Suite`) into ``out_dir``
    (default ``reproduce-<suite>``); returns the path of ``results.md``.

    ``n_bootstrap`` (default: the suite's) resamples give the seed-averaged intervals of the
    tables; ``run_bootstrap`` those of each run's own ``report.md`` (default 0: none, fast).
    ``overrides`` replace config fields of every run (``epochs=5``, ``devices=4``, ...).
    ``tune`` (default: the suite's choice) runs the validation search of every tuned loss first
    (γ, or the option of its ``tune`` table; ``gamma_grid`` replaces the suite's γ grid);
    otherwise they use the value of an earlier search in ``OUT/tune-gamma``, else their
    declared γ or the DFL paper's table (another tuned option: the loss's default). ``ts_criterion`` (default: the suite's, ``"ece"`` unless a study sets it)
    chooses how T is fitted. ``data_dir`` follows :func:`~focalcal.training.suites.resolve_data_dir`.
    ``command`` is recorded in the report (default: a description of this Python call).
    """
    suite = _selected(suite, datasets, losses)
    ts_criterion = suite.ts_criterion if ts_criterion is None else ts_criterion
    check_choice(ts_criterion, "ts_criterion", ("ece", "nll"))
    LAUNCHERS.factory(launcher)  # unknown launcher names fail before any work
    n_bootstrap = check_int(
        suite.n_bootstrap if n_bootstrap is None else n_bootstrap, "n_bootstrap", min_value=0
    )
    out, data = _out(suite, out_dir), resolve_data_dir(data_dir)
    opts = LaunchOptions(
        out / "submitit", timeout_min, tuple((executor_options or {}).items()), echo
    )
    started = time.perf_counter()
    suite.plan(out, seeds=seeds, data_dir=data, **overrides)  # every config is valid: fail now
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, recursive=False)  # of results.md / results.json
    suite.prepare_data(out, data)
    if (suite.tune_gamma if tune is None else tune) and any(s.tuned for s in suite.losses):
        tuning = tune_losses(
            suite, out, grid=gamma_grid, epochs=tune_epochs, data_dir=data, launcher=launcher,
            launch_options=opts, echo=echo, **overrides,
        )  # fmt: skip
    else:
        tuning = saved_tuning(suite, out)
    specs = suite.plan(out, seeds=seeds, data_dir=data, tuned=tuned_values(tuning), **overrides)
    outcomes = _run_pending(suite.name, specs, run_bootstrap, ts_criterion, launcher, opts)
    results = aggregate(suite, specs, n_bootstrap=n_bootstrap, out_dir=out, tuning=tuning)
    results["invocation"] = {
        "command": command or f"reproduce({suite.name!r}, {str(out)!r}) (Python API)",
        "launcher": launcher,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "actions": {a: sum(o["action"] == a for o in outcomes) for a in ACTIONS.values()},
        "machine": machine_info(),
    }
    results["diagrams"] = overlay_diagrams(out, results)
    atomic_write_text(out / RESULTS_JSON, json.dumps(results, indent=2, default=str) + "\n")
    atomic_write_text(out / RESULTS_MD, format_results(results))
    echo(f"[reproduce] report: {out / RESULTS_MD}")
    return out / RESULTS_MD


def _run_pending(
    name: str,
    specs: list[RunSpec],
    run_bootstrap: int,
    ts_criterion: str,
    launcher: str,
    opts: LaunchOptions,
) -> list[dict[str, Any]]:
    """Launch the runs not yet finished and evaluated; the outcome of every run."""
    states = {s.name: run_state(s) for s in specs}  # config mismatches fail before training
    pending = [
        s
        for s in specs
        if states[s.name] != "finished" or not is_evaluated(s.run_dir, run_bootstrap, ts_criterion)
    ]
    opts.echo(
        f"[reproduce] suite {name}: {len(specs)} runs, {len(specs) - len(pending)} already finished"
    )
    job = partial(execute_run, n_bootstrap=run_bootstrap, ts_criterion=ts_criterion)
    outcomes = launch(pending, job, launcher, opts)
    return outcomes + [{"run": s.name, "action": "skipped"} for s in specs if s not in pending]


def machine_info() -> dict[str, Any]:
    """CPU, core count, torch version and GPU (if any) of this machine."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
