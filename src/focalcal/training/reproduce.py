"""``focalcal reproduce`` and ``focalcal tune-gamma``: run a declared suite, publish its tables.

:func:`reproduce` takes a suite (:mod:`focalcal.training.suites`), and

1. derives any data the suite needs (subsets, generated CIFAR-10-C) into ``OUT/data``;
2. picks γ of the tuned losses (Dual Focal Loss) on the validation split: one short run per
   candidate of the suite's grid (:func:`tune_gamma`), the lowest validation ECE wins, as the
   DFL paper did;
3. trains every (dataset, loss, seed) run with :func:`focalcal.training.run.train` — the code of
   ``focalcal train`` — and evaluates it with :func:`focalcal.training.evaluate.evaluate_run`
   (temperature fitted on the validation split, bootstrap intervals). Finished runs whose
   config matches are skipped and interrupted ones resumed from their last checkpoint, so an
   interrupted suite continues where it stopped;
4. writes ``OUT/results.md`` and ``OUT/results.json`` (atomically): per dataset, the papers'
   table (error, ECE, AdaECE, Classwise-ECE, NLL, pre / post (T)) as mean ± std over seeds,
   95% bootstrap intervals of the seed-averaged metrics (test items resampled, the same
   resamples for every seed), OOD AUROC, the γ search, and overlaid reliability diagrams.

Runs are independent jobs. ``launcher="inline"`` trains them one after the other in this
process (laptops, CI); ``"local"`` and ``"slurm"`` submit one submitit job per run (its local
executor on one machine, its SLURM executor on a cluster). The skip-finished logic lives in
:func:`execute_run`, which every launcher calls.

Example (the CI suite, about a minute on a CPU):

    >>> from focalcal.training.reproduce import reproduce
    >>> report = reproduce("ci", "reproduce-ci")  # doctest: +SKIP
    >>> print(report.read_text())                 # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics
from .._io import atomic_write_text
from .._registry import Registry
from .._validation import check_choice, check_int
from .config import load_config, parse_key_value
from .evaluate import METRIC_LABELS, METRICS_FILE, evaluate_run, load_logits
from .run import CONFIG_FILE, STATUS_FILE, is_finished, train
from .suites import SUITES, DatasetSpec, LossSpec, RunSpec, Suite, default_data_dir, get_suite

__all__ = [
    "LAUNCHERS",
    "RunMismatchError",
    "aggregate",
    "execute_run",
    "format_results",
    "main",
    "register_cli",
    "reproduce",
    "run_state",
    "tune_gamma",
]

RESULTS_MD = "results.md"
#: Losses overlaid in the reliability diagrams (the papers' headline comparison).
OVERLAY_LOSSES = ("ce", "brier", "flsd53", "dual_focal")
RESULTS_JSON = "results.json"

#: Config fields that may differ between the first attempt of a run and its continuation.
RUNTIME_FIELDS = frozenset(
    {"accelerator", "devices", "num_nodes", "strategy", "precision", "num_workers"}
)
#: Metrics of the papers' table, in its order (keys of ``metrics.json``).
TABLE_METRICS = ("error", "ece", "adaece", "classwise_ece", "nll")
#: Metrics given a seed-averaged bootstrap interval (vectorised in :func:`metrics.bootstrap_ci`).
INTERVAL_METRICS = ("error", "ece", "adaece", "classwise_ece")


class RunMismatchError(FileExistsError):
    """A run folder holds a run with another configuration than the suite asks for."""


# --------------------------------------------------------------------------- one run


def run_state(spec: RunSpec) -> str:
    """``"finished"``, ``"partial"`` (started, resumable) or ``"new"``.

    Raises :class:`RunMismatchError` when the folder holds a run of another configuration
    (other than runtime fields such as ``devices``), naming the differing fields: a suite never
    silently reuses a run trained with, e.g., other epochs.
    """
    run_dir = Path(spec.run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        return "new"
    saved = load_config(run_dir / CONFIG_FILE).to_dict()
    differ = sorted(
        k for k, v in spec.config.items() if k not in RUNTIME_FIELDS and saved.get(k) != v
    )
    if differ:
        details = ", ".join(f"{k}: {saved.get(k)!r} → {spec.config[k]!r}" for k in differ)
        raise RunMismatchError(
            f"{run_dir} holds a run with another configuration ({details}); use another --out "
            "or delete that run folder"
        )
    return "finished" if is_finished(run_dir) else "partial"


def _evaluated(run_dir: Path, n_bootstrap: int, ts_criterion: str) -> bool:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return False
    saved = json.loads(path.read_text())
    return saved.get("n_bootstrap") == n_bootstrap and saved.get("ts_criterion") == ts_criterion


def execute_run(
    spec: RunSpec,
    *,
    n_bootstrap: int = 0,
    ts_criterion: str = "ece",
    evaluate: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Train (or resume, or skip) the run of ``spec``, then evaluate it unless already done.

    ``n_bootstrap`` is the per-run report's resample count (0: values only; the suite's
    intervals are computed afterwards from the logits by :func:`aggregate`). Idempotent: this
    is the one skip-finished rule of every launcher. Returns
    ``{"run": name, "action": "trained"|"resumed"|"skipped", "seconds": s}`` (``"worker"`` on
    the DDP processes other than global rank 0, e.g. the other tasks of a multi-GPU SLURM job,
    which train but leave evaluation to rank 0).
    """
    start = time.perf_counter()
    state = run_state(spec)
    run_dir = Path(spec.run_dir)
    if state != "finished":
        trained = train(spec.train_config(), run_dir, resume=state == "partial", progress=progress)
        if trained is None:  # a DDP process other than global rank 0: rank 0 evaluates
            return {"run": spec.name, "action": "worker", "seconds": time.perf_counter() - start}
    if evaluate and not _evaluated(run_dir, n_bootstrap, ts_criterion):
        evaluate_run(run_dir, ts_criterion=ts_criterion, n_bootstrap=n_bootstrap, diagrams=False)
    action = {"new": "trained", "partial": "resumed", "finished": "skipped"}[state]
    return {"run": spec.name, "action": action, "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------- launchers


@dataclass(frozen=True)
class LaunchOptions:
    """How jobs are submitted: submitit folder, time limit, SLURM/executor parameters."""

    folder: Path
    timeout_min: int = 60 * 24
    executor_options: tuple[tuple[str, Any], ...] = ()
    echo: Callable[[str], Any] = print


Launcher = Callable[[list[RunSpec], Callable[[RunSpec], dict[str, Any]], LaunchOptions], list]

#: ``name -> launcher(specs, job, options) -> results`` (one job per run).
LAUNCHERS: Registry[Launcher] = Registry("launcher")


@LAUNCHERS.register("inline", "none")
def _inline_launcher() -> Launcher:
    """Run the jobs one after the other in this process."""

    def launch(specs: list[RunSpec], job: Callable[[RunSpec], dict], opts: LaunchOptions) -> list:
        results = []
        for i, spec in enumerate(specs, 1):
            opts.echo(f"[reproduce] {i}/{len(specs)} {spec.name}")
            results.append(job(spec))
        return results

    return launch


def _submitit_launcher(cluster: str) -> Launcher:
    def launch(specs: list[RunSpec], job: Callable[[RunSpec], dict], opts: LaunchOptions) -> list:
        from .._optional import require

        submitit = require("submitit", "train")
        executor = submitit.AutoExecutor(folder=opts.folder / "%j", cluster=cluster)
        executor.update_parameters(
            timeout_min=opts.timeout_min, name="focalcal", **dict(opts.executor_options)
        )
        with executor.batch():
            jobs = [executor.submit(job, spec) for spec in specs]
        opts.echo(f"[reproduce] submitted {len(jobs)} {cluster} jobs; logs in {opts.folder}")
        # a multi-task job (tasks_per_node > 1, one per GPU) returns one result per task
        results = [j.results()[0] for j in jobs]
        return results

    return launch


LAUNCHERS.register("local")(lambda: _submitit_launcher("local"))
LAUNCHERS.register("slurm")(lambda: _submitit_launcher("slurm"))


def _launch(
    specs: list[RunSpec], job: Callable[[RunSpec], dict], launcher: str, opts: LaunchOptions
) -> list[dict[str, Any]]:
    if not specs:
        return []
    return LAUNCHERS.get(launcher)(specs, job, opts)


# --------------------------------------------------------------------------- γ search


def _tune_specs(
    suite: Suite,
    ds: DatasetSpec,
    loss: LossSpec,
    out: Path,
    data_dir: Path,
    grid: Sequence[float],
    epochs: int | None,
    overrides: dict[str, Any],
) -> list[RunSpec]:
    specs = []
    for gamma in grid:
        values = dict(overrides)
        if epochs is not None:
            values["epochs"] = epochs
        cfg = suite.base_config(
            ds, loss, 1, data_dir=data_dir, out_dir=out, gamma=float(gamma), **values
        )
        cfg.ood = []  # the search scores the validation split only
        run_dir = out / "tune-gamma" / ds.key / loss.key / f"g{gamma:g}"
        specs.append(RunSpec(ds.key, f"{loss.key}@γ={gamma:g}", 1, str(run_dir), cfg.to_dict()))
    return specs


def _validation_ece(run_dir: Path, n_bins: int) -> float:
    logits = load_logits(run_dir)
    return float(
        metrics.ece(logits["val_logits"], logits["val_labels"], n_bins=n_bins, from_logits=True)
    )


def tune_gamma(
    suite: str | Suite,
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

    Each γ of ``grid`` (default: the suite's) is a run of ``epochs`` epochs (default: the
    suite's ``tune_epochs``, else the full schedule) on seed 1; the γ with the lowest validation
    ECE (15 bins, before temperature scaling; ties → smaller γ) is chosen. Candidate runs are
    skipped when finished, like suite runs. Writes ``OUT/tune-gamma/<dataset>/<loss>.json``.

    Returns ``{(dataset_key, loss_key): {"gamma": γ, "grid": [...], "val_ece": [...], ...}}``.
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    suite = suite.select(datasets=datasets)
    out = Path(out_dir)
    data = Path(data_dir) if data_dir is not None else default_data_dir()
    grid = tuple(float(g) for g in (grid if grid is not None else suite.gamma_grid))
    if not grid:
        raise ValueError("grid: expected at least one γ, got none")
    for g in grid:
        if not math.isfinite(g) or g < 0:
            raise ValueError(f"grid: expected finite γ >= 0, got {g}")
    epochs = epochs if epochs is not None else suite.tune_epochs
    if epochs is not None:
        check_int(epochs, "epochs", min_value=1)
    tuned = [loss for loss in suite.losses if loss.tune_gamma]
    if not tuned:
        raise ValueError(f"suite {suite.name!r}: none of its losses has a tuned γ")
    _prepare_data(suite, out, data)
    jobs: dict[tuple[str, str], list[RunSpec]] = {
        (ds.key, loss.key): _tune_specs(suite, ds, loss, out, data, grid, epochs, overrides)
        for ds in suite.datasets
        for loss in tuned
    }
    all_specs = [s for specs in jobs.values() for s in specs]
    opts = launch_options or LaunchOptions(out / "submitit", echo=echo)
    job = partial(execute_run, evaluate=False)
    _launch([s for s in all_specs if run_state(s) != "finished"], job, launcher, opts)
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    for (ds_key, loss_key), specs in jobs.items():
        n_bins = specs[0].config["n_bins"]
        eces = [_validation_ece(Path(s.run_dir), n_bins) for s in specs]
        best = int(np.argmin(eces))  # first minimum: the smaller γ on ties (grid is sorted)
        record = {
            "dataset": ds_key,
            "loss": loss_key,
            "grid": list(grid),
            "val_ece": eces,
            "gamma": grid[best],
            "epochs": specs[0].config["epochs"],
            "seed": 1,
            "criterion": f"validation ECE ({n_bins} bins, before temperature scaling)",
        }
        path = out / "tune-gamma" / ds_key / f"{loss_key}.json"
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")
        echo(
            f"[tune-gamma] {ds_key}/{loss_key}: "
            + ", ".join(f"γ={g:g}: {100 * e:.2f}%" for g, e in zip(grid, eces, strict=True))
            + f" → γ={grid[best]:g}"
        )
        chosen[(ds_key, loss_key)] = record
    return chosen


def _saved_tuning(suite: Suite, out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The γ records an earlier :func:`tune_gamma` left in ``OUT/tune-gamma``."""
    found = {}
    for ds in suite.datasets:
        for loss in suite.losses:
            path = out / "tune-gamma" / ds.key / f"{loss.key}.json"
            if loss.tune_gamma and path.is_file():
                found[(ds.key, loss.key)] = json.loads(path.read_text())
    return found


# --------------------------------------------------------------------------- the suite


def _prepare_data(suite: Suite, out: Path, data_dir: Path) -> None:
    for ds in suite.datasets:
        if ds.prepare is not None:
            ds.prepare(ds.resolve_root(data_dir, out) if not _out_root(ds) else None, out)


def _out_root(ds: DatasetSpec) -> bool:
    return bool(ds.roots) and ds.roots[0].startswith("{out}")


def reproduce(
    suite: str | Suite,
    out_dir: str | Path | None = None,
    *,
    seeds: int | None = None,
    datasets: list[str] | None = None,
    losses: list[str] | None = None,
    launcher: str = "inline",
    data_dir: str | Path | None = None,
    n_bootstrap: int | None = None,
    run_bootstrap: int = 0,
    ts_criterion: str = "ece",
    tune: bool | None = None,
    gamma_grid: Sequence[float] | None = None,
    tune_epochs: int | None = None,
    timeout_min: int = 60 * 24,
    executor_options: dict[str, Any] | None = None,
    command: str | None = None,
    echo: Callable[[str], Any] = print,
    **overrides: Any,
) -> Path:
    """Run ``suite`` into ``out_dir`` (default ``reproduce-<suite>``); returns ``results.md``.

    ``n_bootstrap`` (default: the suite's) resamples give the seed-averaged intervals of the
    tables; ``run_bootstrap`` those of each run's own ``report.md`` (default 0: none, fast).
    ``overrides`` replace config fields of every run (``epochs=5``, ``devices=4``, ...).
    ``tune`` (default: the suite's choice) searches γ of the tuned losses first; otherwise they
    use the γ of an earlier search in ``OUT/tune-gamma``, else their declared γ or the DFL
    paper's table.
    """
    suite = get_suite(suite) if isinstance(suite, str) else suite
    suite = suite.select(datasets=datasets, losses=losses)
    check_choice(ts_criterion, "ts_criterion", ("ece", "nll"))
    LAUNCHERS.factory(launcher)  # unknown launcher names fail before any work
    n_bootstrap = check_int(
        suite.n_bootstrap if n_bootstrap is None else n_bootstrap, "n_bootstrap", min_value=0
    )
    out = Path(out_dir) if out_dir is not None else Path(f"reproduce-{suite.name}")
    data = Path(data_dir) if data_dir is not None else default_data_dir()
    opts = LaunchOptions(
        out / "submitit", timeout_min, tuple((executor_options or {}).items()), echo
    )
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    _prepare_data(suite, out, data)
    tuning: dict[tuple[str, str], dict[str, Any]] = {}
    if (suite.tune_gamma if tune is None else tune) and any(s.tune_gamma for s in suite.losses):
        tuning = tune_gamma(
            suite,
            out,
            grid=gamma_grid,
            epochs=tune_epochs,
            data_dir=data,
            launcher=launcher,
            launch_options=opts,
            echo=echo,
            **overrides,
        )
    else:
        tuning = _saved_tuning(suite, out)
    gammas = {key: rec["gamma"] for key, rec in tuning.items()}
    specs = suite.plan(out, seeds=seeds, data_dir=data, gammas=gammas, **overrides)
    states = {s.name: run_state(s) for s in specs}  # config mismatches fail before training
    pending = [
        s
        for s in specs
        if states[s.name] != "finished"
        or not _evaluated(Path(s.run_dir), run_bootstrap, ts_criterion)
    ]
    skipped = len(specs) - len(pending)
    echo(f"[reproduce] suite {suite.name}: {len(specs)} runs, {skipped} already finished")
    job = partial(execute_run, n_bootstrap=run_bootstrap, ts_criterion=ts_criterion)
    outcomes = _launch(pending, job, launcher, opts)
    outcomes += [{"run": s.name, "action": "skipped"} for s in specs if s not in pending]
    results = aggregate(suite, specs, n_bootstrap=n_bootstrap, out_dir=out, tuning=tuning)
    results["invocation"] = {
        "command": command or f"reproduce({suite.name!r}, {str(out)!r}) (Python API)",
        "launcher": launcher,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "actions": {a: sum(o["action"] == a for o in outcomes) for a in _ACTIONS},
        "machine": machine_info(),
    }
    results["diagrams"] = _overlay_diagrams(out, suite, specs, results)
    atomic_write_text(out / RESULTS_JSON, json.dumps(results, indent=2, default=str) + "\n")
    atomic_write_text(out / RESULTS_MD, format_results(results))
    echo(f"[reproduce] report: {out / RESULTS_MD}")
    return out / RESULTS_MD


_ACTIONS = ("trained", "resumed", "skipped")


def _command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed (``argv`` without the program; default: this process's)."""
    return "focalcal " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


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


# --------------------------------------------------------------------------- aggregation


def _mean_std(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else None
    return {"mean": float(arr.mean()), "std": std, "values": [float(v) for v in arr]}


def _seed_mean_interval(
    runs: list[tuple[dict[str, Any], dict[str, torch.Tensor]]],
    metric: str,
    stage: str,
    n_bootstrap: int,
    n_bins: int,
) -> list[float]:
    """95% percentile interval of the seed-averaged ``metric``: every seed's test logits are
    resampled with the same bootstrap indices (same seed, same N), and the resampled values
    are averaged over seeds before taking quantiles."""
    samples = []
    for result, logits in runs:
        t = result["temperature"] if stage == "post" else 1.0
        kwargs = {} if metric == "error" else {"n_bins": n_bins}
        res = metrics.bootstrap_ci(
            metric,
            logits["test_logits"] / t,
            logits["test_labels"],
            n_resamples=n_bootstrap,
            seed=0,
            from_logits=True,
            **kwargs,
        )
        samples.append(res.samples.to(torch.float64))
    mean = torch.stack(samples).mean(0)
    q = torch.tensor([0.025, 0.975], dtype=torch.float64)
    return [float(v) for v in torch.quantile(mean, q)]


def aggregate(
    suite: Suite,
    specs: list[RunSpec],
    *,
    n_bootstrap: int,
    out_dir: str | Path,
    tuning: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per dataset and loss: mean ± std over seeds of every metric pre/post T, seed-averaged
    bootstrap intervals, OOD AUROC, T and training time (from the runs' ``metrics.json``).
    Run folders are recorded relative to ``out_dir`` (the suite folder can be moved)."""
    tuning = tuning or {}
    out: dict[str, Any] = {
        "suite": suite.name,
        "description": suite.description,
        "n_bootstrap": n_bootstrap,
        "datasets": [],
    }
    for ds in suite.datasets:
        rows = []
        for loss in suite.losses:
            mine = [s for s in specs if s.dataset_key == ds.key and s.loss_key == loss.key]
            if not mine:
                continue
            runs = [
                (json.loads((Path(s.run_dir) / METRICS_FILE).read_text()), load_logits(s.run_dir))
                for s in mine
            ]
            results = [r for r, _ in runs]
            row: dict[str, Any] = {
                "loss": loss.key,
                "label": loss.label,
                "gamma": results[0].get("gamma"),
                "seeds": [s.seed for s in mine],
                "runs": [_relative(s.run_dir, out_dir) for s in mine],
                "temperature": _mean_std([r["temperature"] for r in results]),
                "train_seconds": sum(_train_seconds(s) for s in mine),
                "test": {},
                "ood": {},
            }
            n_bins = results[0]["n_bins"]
            for stage in ("pre", "post"):
                row["test"][stage] = {
                    key: _mean_std([r["test"][stage][key]["value"] for r in results])
                    for key in METRIC_LABELS
                }
                if n_bootstrap:
                    for key in INTERVAL_METRICS:
                        row["test"][stage][key]["ci95"] = _seed_mean_interval(
                            runs, key, stage, n_bootstrap, n_bins
                        )
            for name in results[0].get("ood", {}):
                row["ood"][name] = {
                    stage: {
                        score: _mean_std([r["ood"][name][stage][score] for r in results])
                        for score in ("auroc_entropy", "auroc_msp")
                    }
                    for stage in ("pre", "post")
                }
            rows.append(row)
        first = next(s for s in specs if s.dataset_key == ds.key)
        out["datasets"].append(
            {
                "key": ds.key,
                "title": ds.title,
                "data_root": first.config["data_root"],
                "epochs": first.config["epochs"],
                "n_test": json.loads((Path(first.run_dir) / METRICS_FILE).read_text())["n_test"],
                "rows": rows,
                "tuning": [rec for (d, _), rec in tuning.items() if d == ds.key],
            }
        )
    return out


def _relative(path: str | Path, base: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def _train_seconds(spec: RunSpec) -> float:
    path = Path(spec.run_dir) / STATUS_FILE
    return float(json.loads(path.read_text()).get("train_seconds", 0.0)) if path.is_file() else 0.0


def _overlay_diagrams(
    out: Path, suite: Suite, specs: list[RunSpec], results: dict[str, Any]
) -> dict[str, list[str]]:
    """Reliability diagrams of the headline losses (:data:`OVERLAY_LOSSES`, else every loss)
    overlaid (seed 1), pre-T and post-T, per dataset."""
    try:
        from ..plots import save_reliability_diagram
    except ImportError:
        return {}
    made: dict[str, list[str]] = {}
    for ds in results["datasets"]:
        names = []
        n_bins = json.loads((out / ds["rows"][0]["runs"][0] / METRICS_FILE).read_text())["n_bins"]
        for stage in ("pre", "post"):
            probs, labels = {}, None
            headline = [r for r in ds["rows"] if r["loss"] in OVERLAY_LOSSES]
            for row in headline if len(headline) > 1 else ds["rows"]:
                run_dir = out / row["runs"][0]
                logits = load_logits(run_dir)
                t = json.loads((Path(run_dir) / METRICS_FILE).read_text())["temperature"]
                probs[row["label"]] = (
                    logits["test_logits"] / (t if stage == "post" else 1.0)
                ).softmax(1)
                labels = logits["test_labels"]
            name = f"reliability_{ds['key']}_{stage}.png"
            save_reliability_diagram(
                out / name,
                probs,
                labels,
                n_bins=n_bins,
                show_gap=False,
                figsize=(6.0, 6.0),
                title=f"{ds['key']}: {stage}-T (seed 1)",
            )
            names.append(name)
        made[ds["key"]] = names
    return made


# --------------------------------------------------------------------------- formatting


def _fmt(key: str, value: float) -> str:
    return f"{value:.3f}" if key == "nll" else f"{100 * value:.2f}"


def _pm(key: str, stat: dict[str, Any]) -> str:
    text = _fmt(key, stat["mean"])
    if stat.get("std") is not None:
        text += " ± " + _fmt(key, stat["std"])
    return text


def _ci(key: str, stat: dict[str, Any]) -> str:
    lo, hi = stat["ci95"]
    return f"[{_fmt(key, lo)}, {_fmt(key, hi)}]"


def format_results(results: dict[str, Any]) -> str:
    """Markdown of :func:`aggregate`'s results: the papers' table, intervals, OOD, γ search."""
    inv = results.get("invocation", {})
    machine = inv.get("machine", {})
    lines = [
        f"# Suite `{results['suite']}`: {results['description']}",
        "",
        f"Command: `{inv.get('command', '')}`  ",
        f"Machine: {machine.get('processor', '?')}, {machine.get('cpu_count', '?')} cores, "
        f"torch {machine.get('torch', '?')}, GPU: {machine.get('gpu') or 'none'}  ",
        f"Wall time of this invocation: {inv.get('wall_seconds', 0) / 60:.1f} min "
        f"(runs trained {inv.get('actions', {}).get('trained', 0)}, resumed "
        f"{inv.get('actions', {}).get('resumed', 0)}, skipped "
        f"{inv.get('actions', {}).get('skipped', 0)}).",
        "",
        "Cells are mean ± std over seeds (percent; NLL as is); pre / post temperature scaling, "
        "T fitted on the validation split. Intervals: 95% bootstrap of the seed-averaged metric "
        f"({results['n_bootstrap']} resamples of the test set, shared by all seeds).",
    ]
    for ds in results["datasets"]:
        rows = ds["rows"]
        n_seeds = len(rows[0]["seeds"]) if rows else 0
        train_min = sum(r["train_seconds"] for r in rows) / 60
        lines += [
            "",
            f"## {ds['title']}",
            "",
            f"Data: `{ds['data_root']}`; {ds['epochs']} epochs; {n_seeds} seed(s); test set "
            f"{ds['n_test']} samples; total training time {train_min:.1f} min.",
            "",
        ]
        lines += _md_table(
            list(_SUMMARY_HEADERS),
            [_summary_cells(r) for r in rows],
        )
        if rows and "ci95" in rows[0]["test"]["pre"]["ece"]:
            lines += ["", "95% bootstrap intervals (seed-averaged):", ""]
            lines += _md_table(
                list(_INTERVAL_HEADERS),
                [_interval_cells(r) for r in rows],
            )
        lines += _ranking(rows)
        ood_names = sorted({n for r in rows for n in r["ood"]})
        if ood_names:
            lines += [
                "",
                "OOD detection, AUROC (%) of the entropy score, pre / post T (max-softmax in "
                "results.json):",
                "",
            ]
            lines += _md_table(["Loss", *ood_names], [_ood_cells(r, ood_names) for r in rows])
        for rec in ds["tuning"]:
            lines += [
                "",
                f"γ search for `{rec['loss']}` ({rec['criterion']}, {rec['epochs']} epochs, "
                f"seed {rec['seed']}): "
                + ", ".join(
                    f"γ={g:g}: {100 * e:.2f}%"
                    for g, e in zip(rec["grid"], rec["val_ece"], strict=True)
                )
                + f" → **γ = {rec['gamma']:g}**",
            ]
        for name in results.get("diagrams", {}).get(ds["key"], []):
            lines += ["", f"![{name}]({name})"]
    return "\n".join(lines) + "\n"


_SUMMARY_HEADERS = (
    "Loss",
    "Error (%)",
    "ECE (%) pre / post (T)",
    "AdaECE (%) pre / post",
    "CW-ECE (%) pre / post",
    "NLL pre / post",
)
_INTERVAL_HEADERS = (
    "Loss",
    "Error (%)",
    *(f"{m} {stage}" for m in ("ECE", "AdaECE", "CW-ECE") for stage in ("pre", "post")),
)


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _summary_cells(row: dict[str, Any]) -> list[str]:
    pre, post = row["test"]["pre"], row["test"]["post"]
    cells = [_label(row), _pm("error", pre["error"])]
    for key in ("ece", "adaece", "classwise_ece", "nll"):
        cell = f"{_pm(key, pre[key])} / {_pm(key, post[key])}"
        if key == "ece":
            cell += f" ({row['temperature']['mean']:.2f})"
        cells.append(cell)
    return cells


def _interval_cells(row: dict[str, Any]) -> list[str]:
    pre, post = row["test"]["pre"], row["test"]["post"]
    cells = [_label(row), _ci("error", pre["error"])]
    for key in ("ece", "adaece", "classwise_ece"):
        cells += [_ci(key, pre[key]), _ci(key, post[key])]
    return cells


def _ood_cells(row: dict[str, Any], names: list[str]) -> list[str]:
    cells = [_label(row)]
    for name in names:
        s = row["ood"].get(name)
        cells.append(
            "—"
            if s is None
            else f"{_pm('auroc', s['pre']['auroc_entropy'])} / "
            f"{_pm('auroc', s['post']['auroc_entropy'])}"
        )
    return cells


def _label(row: dict[str, Any]) -> str:
    gamma = row.get("gamma")
    tuned = row["loss"] == "dual_focal" and gamma is not None
    return row["label"] + (f" (γ={gamma:g})" if tuned else "")


def _ranking(rows: list[dict[str, Any]]) -> list[str]:
    if len(rows) < 2:
        return []
    lines = [""]
    for stage in ("pre", "post"):
        order = sorted(rows, key=lambda r: r["test"][stage]["ece"]["mean"])
        lines.append(
            f"Ranking by mean ECE {stage}-T: "
            + " < ".join(
                f"{_label(r)} ({100 * r['test'][stage]['ece']['mean']:.2f})" for r in order
            )
            + ("  " if stage == "pre" else "")
        )
    return lines


# --------------------------------------------------------------------------- CLI


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", required=True, help=f"suite name: {', '.join(SUITES.names())}")
    p.add_argument("--datasets", nargs="+", metavar="KEY", help="only these dataset keys")
    p.add_argument(
        "--data-dir",
        help="folder holding the real datasets (default $FOCALCAL_SHARED_DATA or ../shared/data)",
    )
    p.add_argument(
        "--launcher",
        default="inline",
        choices=("inline", "none", "local", "slurm"),
        help="inline: runs one after the other in this process (default); local / slurm: one "
        "submitit job per run on this machine / on a SLURM cluster",
    )
    p.add_argument("--timeout-min", type=int, default=60 * 24, help="submitit job time limit")
    p.add_argument(
        "--executor-option",
        action="append",
        type=parse_key_value,
        metavar="KEY=VALUE",
        help="submitit executor parameter (repeatable), e.g. slurm_partition=gpu gpus_per_node=4",
    )
    hw = p.add_argument_group("overrides for every run")
    hw.add_argument("--epochs", type=int, help="override every run's epochs")
    hw.add_argument("--accelerator", help="auto, cpu, gpu, ...")
    hw.add_argument("--devices", type=lambda t: int(t) if t.isdigit() else t)
    hw.add_argument("--num-nodes", type=int)
    hw.add_argument("--strategy", help="auto, ddp, ...")
    hw.add_argument("--precision", help="32-true, bf16-mixed, ...")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("epochs", "accelerator", "devices", "num_nodes", "strategy", "precision")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _dry_run(args: argparse.Namespace) -> int:
    """Print every run of the plan with its state, train nothing."""
    suite = get_suite(args.suite).select(datasets=args.datasets, losses=args.losses)
    out = Path(args.out or f"reproduce-{suite.name}")
    gammas = {k: rec["gamma"] for k, rec in _saved_tuning(suite, out).items()}
    specs = suite.plan(
        out, seeds=args.seeds, data_dir=args.data_dir, gammas=gammas, **_overrides(args)
    )
    for spec in specs:
        gamma = spec.config["gamma"]
        print(
            f"{run_state(spec):9s} {spec.name}" + (f" (γ={gamma:g})" if gamma is not None else "")
        )
    tuned = [
        x.key for x in suite.losses if x.tune_gamma and (suite.datasets[0].key, x.key) not in gammas
    ]
    if tuned and (suite.tune_gamma if args.tune_gamma is None else args.tune_gamma):
        print(f"(γ of {tuned} is chosen by the γ search first: {list(suite.gamma_grid)})")
    return 0


def _run_reproduce(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    reproduce(
        args.suite,
        args.out,
        seeds=args.seeds,
        datasets=args.datasets,
        losses=args.losses,
        launcher=args.launcher,
        data_dir=args.data_dir,
        n_bootstrap=args.n_bootstrap,
        run_bootstrap=args.run_bootstrap,
        ts_criterion=args.ts_criterion,
        tune=args.tune_gamma,
        gamma_grid=args.gamma_grid,
        tune_epochs=args.tune_epochs,
        timeout_min=args.timeout_min,
        executor_options=dict(args.executor_option or []),
        command=_command_line(getattr(args, "argv", None)),
        **_overrides(args),
    )
    print((Path(args.out or f"reproduce-{get_suite(args.suite).name}") / RESULTS_MD).read_text())
    return 0


def _run_tune_gamma(args: argparse.Namespace) -> int:
    suite = get_suite(args.suite)
    out = Path(args.out or f"reproduce-{suite.name}")
    tune_gamma(
        suite,
        out,
        datasets=args.datasets,
        grid=args.grid,
        epochs=args.tune_epochs,
        data_dir=args.data_dir,
        launcher=args.launcher,
        launch_options=LaunchOptions(
            out / "submitit", args.timeout_min, tuple(dict(args.executor_option or []).items())
        ),
        **_overrides(args),
    )
    return 0


def register_cli(subparsers: Any) -> None:
    """Add the ``reproduce`` and ``tune-gamma`` subcommands to ``focalcal``'s subparsers.

    Each parser stores its handler as ``args.handler`` (``handler(args) -> exit status``).
    """
    p = subparsers.add_parser(
        "reproduce",
        help="run a declared suite (losses × datasets × seeds) and publish the results tables",
        description="Train and evaluate every run of a suite through the same code as "
        "`focalcal train` (finished runs are skipped, interrupted ones resumed), choose DFL's γ "
        "on the validation split, and write OUT/results.md: the papers' tables (error, ECE, "
        "AdaECE, Classwise-ECE, NLL, pre / post temperature scaling) as mean ± std over seeds "
        "with seed-averaged 95%% bootstrap intervals, OOD AUROC and overlaid reliability "
        "diagrams.",
        epilog="examples:\n  focalcal reproduce --suite ci\n"
        "  focalcal reproduce --suite cpu-text --seeds 3 --out reproduce-cpu-text\n"
        "  focalcal reproduce --suite paper --launcher slurm --executor-option "
        "slurm_partition=gpu --executor-option gpus_per_node=1\n"
        "  # DDP on 4 GPUs per run: one SLURM task per GPU, Lightning reads the SLURM env\n"
        "  focalcal reproduce --suite paper --launcher slurm --devices 4 --strategy ddp \\\n"
        "      --executor-option gpus_per_node=4 --executor-option tasks_per_node=4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
    p.add_argument("--seeds", type=int, help="number of seeds (1..N; default: the suite's)")
    p.add_argument("--out", help="output folder (default ./reproduce-SUITE)")
    p.add_argument("--losses", nargs="+", metavar="KEY", help="only these loss keys")
    p.add_argument(
        "--n-bootstrap", type=int, help="bootstrap resamples (default: the suite's; 0: none)"
    )
    p.add_argument(
        "--run-bootstrap",
        type=int,
        default=0,
        help="bootstrap resamples of each run's own report.md (default 0: none)",
    )
    p.add_argument(
        "--ts-criterion",
        choices=("ece", "nll"),
        default="ece",
        help="temperature: the papers' grid search on validation ECE (default) or NLL",
    )
    tune = p.add_mutually_exclusive_group()
    tune.add_argument(
        "--tune-gamma",
        dest="tune_gamma",
        action="store_true",
        default=None,
        help="choose DFL's γ on the validation split first (default for the cpu suites)",
    )
    tune.add_argument(
        "--no-tune-gamma",
        dest="tune_gamma",
        action="store_false",
        help="use the declared γ / the DFL paper's table (default for the paper suite)",
    )
    p.add_argument("--gamma-grid", type=float, nargs="+", metavar="G", help="γ candidates")
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs and their state; train nothing"
    )
    p.add_argument("--tune-epochs", type=int, help="epochs of each γ candidate run")
    p.set_defaults(handler=_run_reproduce)

    p = subparsers.add_parser(
        "tune-gamma",
        help="choose the Dual Focal Loss γ of a suite on the validation split",
        description="One short run per γ of the grid (seed 1); the γ with the lowest "
        "validation ECE (15 bins, before temperature scaling) wins, as in the DFL paper. "
        "Writes OUT/tune-gamma/DATASET/LOSS.json; finished candidate runs are reused.",
    )
    _add_common(p)
    p.add_argument("--out", help="output folder (default ./reproduce-SUITE)")
    p.add_argument("--grid", type=float, nargs="+", metavar="G", help="γ candidates")
    p.add_argument("--tune-epochs", type=int, help="epochs of each candidate run")
    p.set_defaults(handler=_run_tune_gamma)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m focalcal.training.reproduce {reproduce,tune-gamma} ...``: the same as
    ``focalcal reproduce|tune-gamma ...`` (one parser, one error handling: :func:`focalcal.cli.main`).
    """
    from focalcal.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
