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

from .compare import compare_runs
from .config import TrainConfig, load_config, make_config, save_config
from .demo import run_demo
from .evaluate import evaluate_run
from .run import load_model, train

__all__ = [
    "TrainConfig",
    "compare_runs",
    "evaluate_run",
    "load_config",
    "load_model",
    "make_config",
    "run_demo",
    "save_config",
    "train",
]
