"""``focalcal train``: one run, its options generated from :class:`TrainConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..training.config import read_config_file
from ._errors import Interrupted
from ._options import (
    add_config_options,
    add_evaluation_options,
    evaluation_settings,
    flag_of,
    given_fields,
)

_REQUIRED = ("dataset", "model", "loss")


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a network with a calibration loss, then evaluate it",
        description="Train DATASET/MODEL with LOSS under a preset protocol (Lightning), write a "
        "checkpoint every epoch and the final logits, then evaluate (unless --no-evaluate). "
        "Values come from the preset, then --config FILE, then the flags.",
        epilog="Resume after a crash or a SIGTERM with: focalcal train --resume --out RUN\n"
        "Repeat a finished run with: focalcal train --config RUN/config.json --out NEW",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="JSON or TOML file of config fields (e.g. a finished run's config.json); flags "
        "override it",
    )
    add_config_options(p)
    run = p.add_argument_group("run folder")
    run.add_argument("--out", help="run folder (default runs/DATASET-MODEL-LOSS[-gG]-sSEED)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run in --out from its last checkpoint (hardware flags may "
        "change; recipe flags must match the run)",
    )
    run.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    run.add_argument("--no-evaluate", action="store_true", help="skip evaluation after training")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_evaluation_options(p)
    p.set_defaults(handler=_train)


def _requested(args: argparse.Namespace) -> dict[str, Any]:
    """The config values asked for: ``--config FILE``, then the flags over it."""
    values = read_config_file(args.config) if args.config else {}
    return {**values, **given_fields(args)}


def new_config(values: dict[str, Any]) -> Any:
    """The ``TrainConfig`` of ``values``; the dataset, model and loss must be given."""
    from ..training.config import config_from_values

    missing = [flag_of(name) for name in _REQUIRED if name not in values]
    if missing:
        raise ValueError(
            f"missing {', '.join(missing)} (give them as flags or in --config FILE; see "
            "focalcal train --help)"
        )
    return config_from_values(values)


def _resumed_config(out: Path, values: dict[str, Any]) -> Any:
    """The saved config of the run in ``out`` with the given values over it (``train`` refuses
    to resume when they change the recipe, naming the fields)."""
    from ..training import read_run_config

    saved = read_run_config(out)
    for key, value in values.items():
        setattr(saved, key, value)
    saved.validate()
    return saved


def _default_run_name(config: Any) -> str:
    gamma = f"-g{config.gamma:g}" if config.gamma is not None else ""
    return f"{config.dataset}-{config.model}-{config.loss}{gamma}-s{config.seed}"


def _fit(config: Any, out: Path, args: argparse.Namespace) -> Path | None:
    """``train(...)``; a stop by SIGTERM / SIGINT becomes :class:`Interrupted` (resumable)."""
    from ..training import train
    from ..training.trainer import stopping_signal

    try:
        return train(
            config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
        )
    except (KeyboardInterrupt, SystemExit) as stop:
        signum = stopping_signal(stop)
        if signum is None:
            raise
        raise Interrupted(signum, out) from None


def _train(args: argparse.Namespace) -> int:
    values = _requested(args)
    if args.resume:
        if not args.out:
            raise ValueError("--resume: expected --out RUN_DIR naming the run to continue")
        config = _resumed_config(Path(args.out), values)
    else:
        config = new_config(values)
    out = Path(args.out) if args.out else Path("runs") / _default_run_name(config)
    run_dir = _fit(config, out, args)
    if run_dir is None:  # a DDP process other than global rank 0: rank 0 reports
        return 0
    print(f"run finished: {run_dir}")
    if not args.no_evaluate:
        from ..training import evaluate_run, format_report

        result = evaluate_run(
            run_dir,
            **evaluation_settings(args),
        )
        print(format_report(result))
    return 0
