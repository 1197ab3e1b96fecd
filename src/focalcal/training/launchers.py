"""Launchers: how the independent runs of a suite are executed.

``"inline"`` (alias ``"none"``) runs them one after the other in this process (laptops, CI);
``"local"`` and ``"slurm"`` submit one submitit job per run (its local executor on one machine,
its SLURM executor on a cluster). Every launcher calls the same job function, in practice
:func:`focalcal.training.runs.execute_run`, so skipping and resuming behave the same wherever
the runs execute.

Example:
    >>> from focalcal.training.launchers import LaunchOptions, launch
    >>> launch([3, 1, 2], lambda x: x * 2, "inline", LaunchOptions(".", echo=lambda _: None))
    [6, 2, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._registry import Registry

__all__ = ["LAUNCHERS", "LaunchOptions", "launch"]


@dataclass(frozen=True)
class LaunchOptions:
    """How jobs are submitted: submitit folder, time limit, SLURM/executor parameters."""

    folder: Path
    timeout_min: int = 60 * 24
    executor_options: tuple[tuple[str, Any], ...] = ()
    echo: Callable[[str], Any] = print


Job = Callable[[Any], Any]
Launcher = Callable[[Sequence[Any], Job, LaunchOptions], list]

#: ``name -> launcher(specs, job, options) -> results`` (one job per run).
LAUNCHERS: Registry[Launcher] = Registry("launcher")


@LAUNCHERS.register("inline", "none")
def _inline_launcher() -> Launcher:
    """Run the jobs one after the other in this process."""

    def run_all(specs: Sequence[Any], job: Job, opts: LaunchOptions) -> list:
        results = []
        for i, spec in enumerate(specs, 1):
            opts.echo(f"[reproduce] {i}/{len(specs)} {getattr(spec, 'name', spec)}")
            results.append(job(spec))
        return results

    return run_all


def _submitit_launcher(cluster: str) -> Launcher:
    def submit_all(specs: Sequence[Any], job: Job, opts: LaunchOptions) -> list:
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
        return [j.results()[0] for j in jobs]

    return submit_all


@LAUNCHERS.register("local")
def _local_launcher() -> Launcher:
    """One submitit job per run on this machine."""
    return _submitit_launcher("local")


@LAUNCHERS.register("slurm")
def _slurm_launcher() -> Launcher:
    """One submitit job per run on a SLURM cluster."""
    return _submitit_launcher("slurm")


def launch(specs: Sequence[Any], job: Job, launcher: str, opts: LaunchOptions) -> list[Any]:
    """``job(spec)`` for every spec through the launcher named ``launcher``; the results."""
    if not specs:
        return []
    return LAUNCHERS.get(launcher)(specs, job, opts)
