"""Training under the papers' protocol (Lightning), evaluation, comparison, suites and the demo.

Needs the ``train`` extra (``pip install "focalcal[train]"``) to train; evaluating saved runs
needs only the core. The ``focalcal`` command (:mod:`focalcal.cli`) is a thin layer over:

* :func:`make_config` / :class:`TrainConfig` — presets ``paper`` and ``cpu``, the DFL γ table;
* :func:`train` — one run into a run folder (atomic per-epoch checkpoints, resume, DDP);
* :func:`evaluate_run` — metrics pre/post temperature scaling with bootstrap intervals, OOD
  AUROC, reliability diagrams, ``metrics.json`` and ``report.md``;
* :func:`compare_runs` — one table across runs with paired-bootstrap p-values;
* :func:`run_demo` — CE vs FLSD-53 vs DFL on the packaged 20 Newsgroups embeddings;
* :func:`reproduce`, :func:`plan_runs` and :func:`tune_gamma` — a declared suite of runs, its
  plan, and the validation search of DFL's γ.

Example:
    >>> from focalcal.training import make_config
    >>> make_config("cifar100", "resnet110", "dual_focal").gamma  # the DFL paper's table
    6.1
"""

from .compare import compare_runs
from .config import TrainConfig, load_config, make_config, save_config
from .demo import run_demo
from .evaluate import evaluate_run, format_report
from .launchers import LaunchOptions
from .reproduce import RunPlan, plan_runs, reproduce
from .run import CorruptRunFileError, RunExistsError, load_model, read_run_config, train
from .runs import RunMismatchError
from .suites import SUITES, get_suite
from .tuning import tune_gamma

__all__ = [
    "SUITES",
    "CorruptRunFileError",
    "LaunchOptions",
    "RunExistsError",
    "RunMismatchError",
    "RunPlan",
    "TrainConfig",
    "compare_runs",
    "evaluate_run",
    "format_report",
    "get_suite",
    "load_config",
    "load_model",
    "make_config",
    "plan_runs",
    "read_run_config",
    "reproduce",
    "run_demo",
    "save_config",
    "train",
    "tune_gamma",
]
