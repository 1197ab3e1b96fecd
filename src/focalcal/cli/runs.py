"""``focalcal evaluate``, ``compare``, ``demo`` and ``list``: commands over finished runs."""

from __future__ import annotations

import argparse
from typing import Any

from ._options import add_evaluation_options, evaluation_settings, key_value


def register(subparsers: Any) -> None:
    """Add the ``evaluate``, ``compare``, ``demo`` and ``list`` subcommands."""
    _register_evaluate(subparsers)
    p = subparsers.add_parser(
        "compare",
        help="one table across runs with intervals and p-values against cross-entropy",
        description="Compare evaluated runs (evaluating those that are not): one table like the "
        "papers' Table 1, runs grouped by (dataset, model, loss, γ) with mean ± std over their "
        "seeds, n_seeds, seed-averaged 95% intervals, and the paired-bootstrap p-value of each "
        "group's ECE against the baseline group on the same test set (--per-run: one row per "
        "run). Runs of different test sets are refused.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    add_evaluation_options(p)
    p.add_argument("--baseline", default="ce", help="loss of the reference run (default ce)")
    p.add_argument("--out", help="folder for compare.md / compare.json (default: print only)")
    p.add_argument("--diagrams", action="store_true", help="overlaid reliability diagrams")
    p.add_argument(
        "--per-run",
        action="store_true",
        help="one row per run instead of one per (dataset, model, loss, γ) group of seeds",
    )
    p.set_defaults(handler=_compare)

    p = subparsers.add_parser(
        "demo",
        help="train CE, FLSD-53 and DFL on packaged 20 Newsgroups features and compare (CPU, ~1 min)",
        description="Train cross-entropy, FLSD-53 and Dual Focal Loss (γ=5) with a 2×256 MLP on the "
        "20 Newsgroups MiniLM sentence embeddings shipped with focalcal (no download), evaluate, "
        "calibrate, print the comparison table and write the report and diagrams.",
    )
    p.add_argument("--out", default="focalcal-demo", help="output folder (default ./focalcal-demo)")
    p.add_argument("--epochs", type=int, help="override the cpu preset's 20 epochs")
    p.add_argument("--n-bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    p.add_argument("--overwrite", action="store_true", help="retrain runs that already finished")
    p.add_argument("--progress", action="store_true", help="show Lightning's progress bars")
    p.set_defaults(handler=_demo)

    p = subparsers.add_parser(
        "list", help="list the registered datasets, models, losses, presets and suites"
    )
    p.add_argument("what", nargs="?", choices=("datasets", "models", "losses", "presets", "suites"))
    p.set_defaults(handler=_list)


def _register_evaluate(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="metrics pre/post temperature scaling, OOD AUROC, reliability diagrams",
        description="Evaluate a finished run: error, NLL, ECE, AdaECE, Classwise-ECE and smooth "
        "ECE before and after temperature scaling (T fitted on the validation split), with 95% "
        "bootstrap intervals; OOD AUROC; reliability diagrams; metrics.json and report.md.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run folder written by focalcal train")
    add_evaluation_options(p)
    p.add_argument("--out", help="write the report here instead of the run folder")
    p.add_argument(
        "--recompute-logits",
        action="store_true",
        help="reload the checkpoint and recompute the logits in this process",
    )
    p.add_argument(
        "--ood",
        nargs="+",
        metavar="NAME[:ROOT]",
        help="add OOD test sets (logits computed from the checkpoint), e.g. svhn or npz:other.npz",
    )
    p.add_argument(
        "--ood-option",
        action="append",
        type=key_value,
        metavar="[NAME.]KEY=VALUE",
        help="--ood loader option (repeatable): KEY=VALUE for every set, NAME.KEY=VALUE for the "
        "set NAME only, e.g. cifar10_c.severity=5",
    )
    p.add_argument("--no-diagrams", action="store_true", help="skip the reliability diagrams")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from ..training import evaluate_run, format_report

    result = evaluate_run(
        args.run,
        **evaluation_settings(args),
        out_dir=args.out,
        recompute_logits=args.recompute_logits,
        ood=args.ood,
        ood_options=dict(args.ood_option or []),
        diagrams=not args.no_diagrams,
    )
    print(format_report(result))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ..training import compare_runs

    table = compare_runs(
        args.runs,
        baseline=args.baseline,
        **evaluation_settings(args),
        out_dir=args.out,
        diagrams=args.diagrams,
        per_run=args.per_run,
    )
    print(table["markdown"])
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..training import run_demo

    run_demo(
        args.out,
        epochs=args.epochs,
        n_bootstrap=args.n_bootstrap,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from ..data import DATASETS
    from ..losses import LOSSES
    from ..models import MODELS
    from ..training.config import PRESETS
    from ._library import suite_names

    tables = {
        "datasets": DATASETS.names(),
        "models": MODELS.names(),
        "losses": LOSSES.names(),
        "presets": PRESETS.names(),
        "suites": suite_names(),
    }
    for name, names in tables.items():
        if args.what in (None, name):
            print(f"{name}: {', '.join(names)}")
    return 0
