"""Transitional argparse of ``focalcal reproduce`` / ``tune-gamma`` for the single-file ``cli.py``.

The ``focalcal.cli`` package owns every line of argparse; once it replaces ``cli.py`` this
module and its re-export in :mod:`focalcal.training.reproduce` are deleted. It calls only the
public functions of :mod:`focalcal.training` (``reproduce``, ``plan_runs``, ``tune_gamma``,
``LaunchOptions``, ``get_suite``, ``SUITES``), as the package does.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

_HARDWARE = ("epochs", "accelerator", "devices", "num_nodes", "strategy", "precision")


def _add_common(p: argparse.ArgumentParser) -> None:
    from .config import parse_key_value

    p.add_argument(
        "--suite", required=True, help="suite name (ci, cpu-text, cpu-vision, paper) or study.toml"
    )
    p.add_argument("--datasets", nargs="+", metavar="KEY", help="only these dataset keys")
    p.add_argument("--data-dir", help="folder holding the datasets (default $FOCALCAL_DATA)")
    p.add_argument("--launcher", default="inline", choices=("inline", "none", "local", "slurm"))
    p.add_argument("--timeout-min", type=int, default=60 * 24, help="submitit job time limit")
    p.add_argument(
        "--executor-option", action="append", type=parse_key_value, metavar="KEY=VALUE",
        help="submitit executor parameter (repeatable), e.g. slurm_partition=gpu",
    )  # fmt: skip
    hw = p.add_argument_group("overrides for every run")
    hw.add_argument("--epochs", type=int, help="override every run's epochs")
    hw.add_argument("--accelerator", help="auto, cpu, gpu, ...")
    hw.add_argument("--devices", type=lambda t: int(t) if t.isdigit() else t)
    hw.add_argument("--num-nodes", type=int)
    hw.add_argument("--strategy", help="auto, ddp, ...")
    hw.add_argument("--precision", help="32-true, bf16-mixed, ...")
    p.add_argument("--out", help="output folder (default ./reproduce-SUITE)")
    p.add_argument("--tune-epochs", type=int, help="epochs of each γ candidate run")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in _HARDWARE if getattr(args, k) is not None}


def _run_reproduce(args: argparse.Namespace) -> int:
    from . import plan_runs, reproduce

    common = dict(seeds=args.seeds, datasets=args.datasets, losses=args.losses,
                  data_dir=args.data_dir, tune=args.tune_gamma, **_overrides(args))  # fmt: skip
    if args.dry_run:
        print("\n".join(plan_runs(args.suite, args.out, **common).lines()))
        return 0
    argv = sys.argv[1:] if args.argv is None else args.argv
    report = reproduce(
        args.suite, args.out, launcher=args.launcher, n_bootstrap=args.n_bootstrap,
        run_bootstrap=args.run_bootstrap, ts_criterion=args.ts_criterion,
        gamma_grid=args.gamma_grid, tune_epochs=args.tune_epochs, timeout_min=args.timeout_min,
        executor_options=dict(args.executor_option or []),
        command="focalcal " + " ".join(shlex.quote(a) for a in argv), **common,
    )  # fmt: skip
    print(report.read_text())
    return 0


def _run_tune_gamma(args: argparse.Namespace) -> int:
    from . import LaunchOptions, get_suite, tune_gamma

    out = Path(args.out or f"reproduce-{get_suite(args.suite).name}")
    options = tuple(dict(args.executor_option or []).items())
    tune_gamma(
        args.suite, out, datasets=args.datasets, grid=args.grid, epochs=args.tune_epochs,
        data_dir=args.data_dir, launcher=args.launcher,
        launch_options=LaunchOptions(out / "submitit", args.timeout_min, options),
        **_overrides(args),
    )  # fmt: skip
    return 0


def register_cli(subparsers: Any) -> None:
    """Add the ``reproduce`` and ``tune-gamma`` subcommands (handlers in ``args.handler``)."""
    p = subparsers.add_parser(
        "reproduce",
        help="run a declared suite (losses × datasets × seeds) and publish the results tables",
        epilog="examples:\n  focalcal reproduce --suite ci\n"
        "  focalcal reproduce --suite paper --launcher slurm --executor-option "
        "slurm_partition=gpu",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
    p.add_argument("--seeds", type=int, help="number of seeds (1..N; default: the suite's)")
    p.add_argument("--losses", nargs="+", metavar="KEY", help="only these loss keys")
    p.add_argument("--n-bootstrap", type=int, help="bootstrap resamples (default: the suite's)")
    p.add_argument("--run-bootstrap", type=int, default=0, help="resamples of each report.md")
    p.add_argument("--ts-criterion", choices=("ece", "nll"))
    tune = p.add_mutually_exclusive_group()
    tune.add_argument("--tune-gamma", dest="tune_gamma", action="store_true", default=None)
    tune.add_argument("--no-tune-gamma", dest="tune_gamma", action="store_false")
    p.add_argument("--gamma-grid", type=float, nargs="+", metavar="G", help="γ candidates")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state")
    p.set_defaults(handler=_run_reproduce)

    p = subparsers.add_parser(
        "tune-gamma", help="choose the Dual Focal Loss γ of a suite on the validation split"
    )
    _add_common(p)
    p.add_argument("--grid", type=float, nargs="+", metavar="G", help="γ candidates")
    p.set_defaults(handler=_run_tune_gamma)
