"""Running, skipping and resuming runs: the one rule of ``reproduce``, ``tune-gamma``, ``demo``
and ``compare``.

A run (a :class:`~focalcal.training.suites.RunSpec`: a folder and its full config) is in one of
three states (:func:`run_state`): ``"new"``, ``"partial"`` (started, resumable from its last
checkpoint) or ``"finished"``. :func:`execute_run` trains a new run, resumes a partial one and
skips a finished one, then evaluates it unless its ``metrics.json`` already has the requested
settings (:func:`ensure_evaluated`). A folder holding a run of another configuration is never
reused: :class:`RunMismatchError` names the differing fields.

Example:
    >>> from focalcal.training.runs import run_state
    >>> from focalcal.training.suites import RunSpec
    >>> run_state(RunSpec("data", "ce", 1, "no-such-folder", {}))
    'new'
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .evaluate import METRICS_FILE, evaluate_run
from .run import CONFIG_FILE, config_differences, is_finished, read_run_config, train
from .suites import RunSpec

__all__ = ["RunMismatchError", "ensure_evaluated", "execute_run", "is_evaluated", "run_state"]

#: What :func:`execute_run` did, by the state the run was found in.
ACTIONS = {"new": "trained", "partial": "resumed", "finished": "skipped"}


class RunMismatchError(FileExistsError):
    """A run folder holds a run with another configuration than the one asked for."""


def run_state(spec: RunSpec) -> str:
    """``"finished"``, ``"partial"`` (started, resumable) or ``"new"``.

    Raises :class:`RunMismatchError` when the folder holds a run of another configuration
    (other than runtime fields such as ``devices``), naming the differing fields: a run trained
    with, e.g., other epochs is never silently reused.
    """
    run_dir = Path(spec.run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        return "new"
    saved = read_run_config(run_dir).to_dict()
    differ = config_differences(saved, {**saved, **spec.config})
    if differ:
        raise RunMismatchError(
            f"{run_dir} holds a run with another configuration ({', '.join(differ)}); use "
            "another --out or delete that run folder"
        )
    return "finished" if is_finished(run_dir) else "partial"


def is_evaluated(run_dir: str | Path, n_bootstrap: int, ts_criterion: str) -> bool:
    """Whether ``RUN/metrics.json`` exists with these bootstrap and temperature settings."""
    try:
        saved = json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return False  # absent or unreadable: evaluating again rewrites it
    return saved.get("n_bootstrap") == n_bootstrap and saved.get("ts_criterion") == ts_criterion


def ensure_evaluated(
    run_dir: str | Path,
    *,
    n_bootstrap: int,
    ts_criterion: str = "ece",
    seed: int = 0,
    diagrams: bool = True,
) -> dict[str, Any]:
    """The run's ``metrics.json``, evaluating it first when it has none with these settings."""
    if is_evaluated(run_dir, n_bootstrap, ts_criterion):
        return json.loads((Path(run_dir) / METRICS_FILE).read_text())
    return evaluate_run(
        run_dir, ts_criterion=ts_criterion, n_bootstrap=n_bootstrap, seed=seed, diagrams=diagrams
    )


def execute_run(
    spec: RunSpec,
    *,
    n_bootstrap: int = 0,
    ts_criterion: str = "ece",
    evaluate: bool = True,
    diagrams: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Train (or resume, or skip) the run of ``spec``, then evaluate it unless already done.

    ``n_bootstrap`` is the per-run report's resample count. ``overwrite`` trains the run again
    whatever its folder holds. Idempotent: this is the one skip-finished rule of every
    launcher. Returns ``{"run": name, "action": "trained"|"resumed"|"skipped", "seconds": s}``
    (``"worker"`` on the DDP processes other than global rank 0, e.g. the other tasks of a
    multi-GPU SLURM job, which train but leave evaluation to rank 0).
    """
    start = time.perf_counter()
    state = "new" if overwrite else run_state(spec)
    run_dir = Path(spec.run_dir)
    if state != "finished":
        trained = train(
            spec.train_config(),
            run_dir,
            resume=state == "partial",
            overwrite=overwrite,
            progress=progress,
        )
        if trained is None:  # a DDP process other than global rank 0: rank 0 evaluates
            return {"run": spec.name, "action": "worker", "seconds": time.perf_counter() - start}
    if evaluate:
        ensure_evaluated(
            run_dir, n_bootstrap=n_bootstrap, ts_criterion=ts_criterion, diagrams=diagrams
        )
    return {"run": spec.name, "action": ACTIONS[state], "seconds": time.perf_counter() - start}
