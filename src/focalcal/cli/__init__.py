"""The ``focalcal`` command: train, evaluate, compare, demo, reproduce (a thin layer over
:mod:`focalcal.training`).

Run ``focalcal --help`` or ``focalcal SUBCOMMAND --help``. Every line of argparse in focalcal
lives in this package, and nothing in the library imports it. Building the parser imports no
torch (the subcommands import the library when they run), so ``--help`` is fast.

Example:
    >>> from focalcal.cli import main
    >>> main(["list", "presets"])
    presets: cpu, paper
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import reproduce, runs, train
from ._errors import CTRL_C, report

__all__ = ["build_parser", "main"]

_EXAMPLES = """\
examples:
  focalcal demo                                    # CE vs FLSD-53 vs DFL on packaged 20 Newsgroups
  focalcal train --dataset cifar10 --model resnet50 --loss dual_focal      # paper protocol, γ=5
  focalcal train --dataset npz --data-root feats.npz --model mlp --loss flsd53 --preset cpu
  focalcal train --config runs/A/config.json --out runs/B       # repeat a run (flags override)
  focalcal evaluate runs/cifar10-resnet50-dual_focal-g5-s1
  focalcal compare runs/*/ --diagrams
  torchrun --nproc-per-node 4 -m focalcal.cli train --dataset cifar10 --model resnet50 \\
      --loss dual_focal --devices 4 --strategy ddp
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``focalcal`` argument parser (each subcommand stores its handler in ``handler``)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="focalcal",
        description="Calibration-aware training (focal, FLSD-53, Dual Focal and more), temperature "
        "scaling and the papers' calibration report.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"focalcal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train.register(sub)
    runs.register(sub)
    reproduce.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``focalcal`` command; returns the exit status.

    A user's mistake or an environment fault is one line on stderr (see
    :mod:`focalcal.cli._errors` for which errors, and their exit status); a bug keeps its
    traceback.
    """
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # Ctrl-C outside training (training reports its own stop)
        print(f"focalcal {args.command}: error: interrupted (Ctrl-C)", file=sys.stderr)
        return CTRL_C
    except Exception as err:
        status = report(args.command, err)
        if status is None:
            raise
        return status
