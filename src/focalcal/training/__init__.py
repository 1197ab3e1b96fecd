"""Training under the papers' protocol (Lightning), evaluation, comparison and the demo.

Needs the ``train`` extra (``pip install "focalcal[train]"``) to train; evaluating saved runs
needs only the core. The ``focalcal`` command (:mod:`focalcal.cli`) is a thin layer over:

* :func:`make_config` / :class:`TrainConfig` — presets ``paper`` and ``cpu``, the DFL γ table;
* :func:`train` — one run into a run folder (atomic per-epoch checkpoints, resume, DDP);
* :func:`evaluate_run` — metrics pre/post temperature scaling with bootstrap intervals, OOD
  AUROC, reliability diagrams, ``metrics.json`` and ``report.md``;
* :func:`compare_runs` — one table across runs with paired-bootstrap p-values;
* :func:`run_demo` — CE vs FLSD-53 vs DFL on the packaged 20 Newsgroups embeddings.

Example:
    >>> from focalcal.training import make_config
    >>> make_config("cifar100", "resnet110", "dual_focal").gamma  # the DFL paper's table
    6.1
"""

from __future__ import annotations

import importlib
from typing import Any

# Submodules are imported on first use (PEP 562), so that `focalcal --help` can read the config
# declarations in `focalcal.training.config` without importing torch and Lightning.
_HOMES = {
    "TrainConfig": "config",
    "compare_runs": "compare",
    "evaluate_run": "evaluate",
    "load_config": "config",
    "load_model": "run",
    "make_config": "config",
    "run_demo": "demo",
    "save_config": "config",
    "train": "run",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
