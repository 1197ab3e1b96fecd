"""Training under the papers' protocol (Lightning), evaluation, comparison, suites and the demo.

Needs the ``train`` extra (``pip install "focalcal[train]"``) to train; evaluating saved runs
needs only the core. The ``focalcal`` command (:mod:`focalcal.cli`) is a thin layer over:

* :func:`make_config` / :class:`TrainConfig` — presets ``paper`` and ``cpu``, the DFL γ table;
* :func:`train` — one run into a run folder (atomic per-epoch checkpoints, resume, DDP);
* :func:`evaluate_run` — metrics pre/post temperature scaling with bootstrap intervals, OOD
  AUROC, reliability diagrams, ``metrics.json`` and ``report.md``;
* :func:`compare_runs` — one table across runs with paired-bootstrap p-values;
* :func:`run_demo` — CE vs FLSD-53 vs DFL on the packaged 20 Newsgroups embeddings;
* :func:`reproduce`, :func:`plan_runs` and :func:`tune_losses` (alias :func:`tune_gamma`) — a
  declared suite of runs, its plan, and the validation search of its tuned losses (DFL's γ,
  MbLS's margin, MDCA's β, ...).

Example:
    >>> from focalcal.training import make_config
    >>> make_config("cifar100", "resnet110", "dual_focal").gamma  # the DFL paper's table
    6.1
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# Submodules are imported on first use (PEP 562), so that `focalcal --help` can read the config
# declarations in `focalcal.training.config` without importing torch and Lightning.
_HOMES = {
    "SUITES": "suites",
    "CorruptRunFileError": "run",
    "LaunchOptions": "launchers",
    "RunExistsError": "run",
    "RunMismatchError": "runs",
    "RunPlan": "reproduce",
    "TrainConfig": "config",
    "compare_runs": "compare",
    "evaluate_run": "evaluate",
    "format_report": "evaluate",
    "get_suite": "suites",
    "load_config": "config",
    "load_model": "run",
    "make_config": "config",
    "plan_runs": "reproduce",
    "read_run_config": "run",
    "reproduce": "reproduce",
    "run_demo": "demo",
    "save_config": "config",
    "train": "run",
    "tune_gamma": "tuning",
    "tune_losses": "tuning",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_HOMES[name]}", __name__)
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``focalcal.training.reproduce`` is the function, as an eager ``from .reproduce import
    reproduce`` would leave it, even after the import system binds the submodule of that name."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _HOMES and _HOMES[name] == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
