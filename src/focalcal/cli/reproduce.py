"""``focalcal reproduce`` and ``focalcal tune-gamma``: run a declared suite of trainings."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ._options import add_config_options, add_hardware_options, given_fields, key_value

_REPRODUCE_EXAMPLES = """\
examples:
  focalcal reproduce --suite ci
  focalcal reproduce --suite cpu-text --seeds 3 --out reproduce-cpu-text
  focalcal reproduce --suite paper --launcher slurm --executor-option slurm_partition=gpu \\
      --executor-option gpus_per_node=1
  # DDP on 4 GPUs per run: one SLURM task per GPU, Lightning reads the SLURM env
  focalcal reproduce --suite paper --launcher slurm --devices 4 --strategy ddp \\
      --executor-option gpus_per_node=4 --executor-option tasks_per_node=4
"""


def _add_suite_options(p: argparse.ArgumentParser, *, run_options: bool = False) -> None:
    """The options ``reproduce`` and ``tune-gamma`` share: which suite, where, how launched.

    With ``run_options`` (``tune-gamma``) the suite is optional and every ``focalcal train``
    option is accepted instead: one run's dataset, model, loss and recipe."""
    p.add_argument(
        "--suite",
        required=not run_options,
        help="suite name (see: focalcal list suites) or a study file study.toml"
        + ("; or give one run with train's options (--dataset, --model, --loss, ...)"
           if run_options else ""),
    )  # fmt: skip
    p.add_argument("--datasets", nargs="+", metavar="KEY", help="only these dataset keys")
    p.add_argument("--out", help="output folder (default ./reproduce-SUITE)")
    p.add_argument(
        "--data-dir",
        help="folder holding the real datasets (default: the documented search order)",
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
        type=key_value,
        metavar="KEY=VALUE",
        help="submitit executor parameter (repeatable), e.g. slurm_partition=gpu gpus_per_node=4",
    )
    if not run_options:
        add_hardware_options(p, "overrides for every run")
        return
    p.add_argument(
        "--config",
        metavar="FILE",
        help="JSON or TOML file of train options (without --suite); flags override it",
    )
    add_config_options(p)


def register(subparsers: Any) -> None:
    """Add the ``reproduce`` and ``tune-gamma`` subcommands."""
    _register_reproduce(subparsers)
    p = subparsers.add_parser(
        "tune-gamma",
        help="run every validation search of a suite: DFL's γ, MbLS's margin, MDCA's β, ...",
        description="Runs every search of --suite: for each tuned loss (tune_gamma = true, or "
        "tune = {option, grid} in the study file), one short run per value of its grid "
        "(seed 1); the value with the lowest validation ECE (15 bins, before temperature "
        "scaling; ties: the first of the grid) wins, as in the DFL, MbLS and MDCA papers. "
        "Without --suite, tunes γ of the one run that train's options describe "
        "(focalcal tune-gamma --dataset npz --data-root feats.npz --model mlp --loss dual_focal). "
        "Prints the validation ECE of each value and the choice; writes "
        "OUT/tune-gamma/DATASET/LOSS.json; finished candidate runs are reused.",
    )
    _add_suite_options(p, run_options=True)
    p.add_argument(
        "--grid",
        type=float,
        nargs="+",
        metavar="G",
        help="γ candidates of the tune_gamma losses (default: the suite's gamma_grid; a loss "
        "with its own tune grid keeps it)",
    )
    p.add_argument("--tune-epochs", type=int, help="epochs of each candidate run")
    p.set_defaults(handler=_tune_gamma)


def _register_reproduce(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run a declared suite (losses × datasets × seeds) and publish the results tables",
        description="Train and evaluate every run of a suite through the same code as "
        "`focalcal train` (finished runs are skipped, interrupted ones resumed), choose the "
        "tuned options (DFL's γ, MbLS's margin, MDCA's β) on the validation split, and write OUT/results.md: the papers' tables (error, ECE, "
        "AdaECE, Classwise-ECE, NLL, pre / post temperature scaling) as mean ± std over seeds "
        "with seed-averaged 95% bootstrap intervals, OOD AUROC and overlaid reliability "
        "diagrams.",
        epilog=_REPRODUCE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_suite_options(p)
    p.add_argument("--seeds", type=int, help="number of seeds (1..N; default: the suite's)")
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
        help="temperature: the papers' grid search on validation ECE or NLL (default: the suite's)",
    )
    tune = p.add_mutually_exclusive_group()
    tune.add_argument(
        "--tune-gamma",
        dest="tune_gamma",
        action="store_true",
        default=None,
        help="run every validation search first: DFL's γ, MbLS's margin, MDCA's β, ... "
        "(default for the cpu suites)",
    )
    tune.add_argument(
        "--no-tune-gamma",
        dest="tune_gamma",
        action="store_false",
        help="run no search: use an earlier search's values in OUT/tune-gamma, else the "
        "declared γ / the DFL paper's table and the losses' defaults (default for the paper suite)",
    )
    p.add_argument(
        "--gamma-grid",
        type=float,
        nargs="+",
        metavar="G",
        help="γ candidates of the tune_gamma losses (default: the suite's gamma_grid)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs and their state; train nothing"
    )
    p.add_argument("--tune-epochs", type=int, help="epochs of each search candidate run")
    p.set_defaults(handler=_reproduce)


def _out(args: argparse.Namespace) -> Path:
    from ._library import suite_name

    if args.suite is None:
        return Path(args.out or f"tune-gamma-{args.dataset}-{args.model}-{args.loss}")
    return Path(args.out or f"reproduce-{suite_name(args.suite)}")


def _tuned(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """What ``tune-gamma`` tunes: ``--suite`` with overrides, or the one run of train's options
    (its :class:`~focalcal.training.TrainConfig`, built as ``focalcal train`` builds it)."""
    from ..training.config import read_config_file
    from .train import new_config

    if args.suite is not None:
        if args.config:
            raise ValueError("--config: give train options without --suite, not both")
        return args.suite, _checked_overrides(args)
    values = {**(read_config_file(args.config) if args.config else {}), **given_fields(args)}
    from ..training.trainer import check_hardware

    config = new_config(values)
    check_hardware(config.accelerator, config.devices)
    return config, {}


def _checked_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides of every run, the hardware checked before anything is written."""
    from ..training.trainer import check_hardware

    overrides = given_fields(args)
    check_hardware(overrides.get("accelerator", "auto"), overrides.get("devices", "auto"))
    return overrides


def _command_line(argv: list[str] | None) -> str:
    """The command as typed, recorded in ``results.json``."""
    return "focalcal " + shlex.join(sys.argv[1:] if argv is None else argv)


def _reproduce(args: argparse.Namespace) -> int:
    from ._library import library

    common = {
        "seeds": args.seeds,
        "datasets": args.datasets,
        "losses": args.losses,
        "data_dir": args.data_dir,
        "tune": args.tune_gamma,
        **_checked_overrides(args),
    }
    if args.dry_run:
        print("\n".join(library("plan_runs")(args.suite, args.out, **common).lines()))
        return 0
    report = library("reproduce")(
        args.suite,
        args.out,
        **common,
        launcher=args.launcher,
        n_bootstrap=args.n_bootstrap,
        run_bootstrap=args.run_bootstrap,
        ts_criterion=args.ts_criterion,
        gamma_grid=args.gamma_grid,
        tune_epochs=args.tune_epochs,
        timeout_min=args.timeout_min,
        executor_options=dict(args.executor_option or []),
        command=_command_line(args.argv),
    )
    print(Path(report).read_text())
    return 0


def _tune_gamma(args: argparse.Namespace) -> int:
    from ._library import library

    tuned, overrides = _tuned(args)
    out = _out(args)
    options = tuple(dict(args.executor_option or []).items())
    library("tune_losses")(
        tuned,
        out,
        datasets=args.datasets,
        grid=args.grid,
        epochs=args.tune_epochs,
        data_dir=args.data_dir,
        launcher=args.launcher,
        launch_options=library("LaunchOptions")(out / "submitit", args.timeout_min, options),
        **overrides,
    )
    return 0
