"""The ``focalcal`` command: train, evaluate, compare, demo (a thin layer over focalcal.training).

Run ``focalcal --help`` or ``focalcal SUBCOMMAND --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .training.config import parse_key_value

__all__ = ["build_parser", "main"]

_EXAMPLES = """\
examples:
  focalcal demo                                    # CE vs FLSD-53 vs DFL on packaged 20 Newsgroups
  focalcal train --dataset cifar10 --model resnet50 --loss dual_focal      # paper protocol, γ=5
  focalcal train --dataset npz --data-root feats.npz --model mlp --loss flsd53 --preset cpu
  focalcal evaluate runs/cifar10-resnet50-dual_focal-g5-s1
  focalcal compare runs/*/ --diagrams
  torchrun --nproc-per-node 4 -m focalcal.cli train --dataset cifar10 --model resnet50 \\
      --loss dual_focal --devices 4 --strategy ddp
"""


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_argument_group("what to train")
    what.add_argument("--dataset", help="dataset name of the data registry (e.g. cifar10, npz)")
    what.add_argument("--model", help="model name of the model registry (e.g. resnet50, mlp)")
    what.add_argument("--loss", help="loss name of the loss registry (e.g. ce, flsd53, dual_focal)")
    what.add_argument(
        "--gamma",
        type=float,
        help="γ of focal-type losses (default: the DFL paper's table for dual_focal)",
    )
    what.add_argument("--data-root", help="dataset folder, or the .npz file for --dataset npz")
    what.add_argument(
        "--ood",
        nargs="+",
        metavar="NAME[:ROOT]",
        help="OOD test sets to evaluate (e.g. svhn cifar10_c, or npz:other.npz)",
    )
    what.add_argument(
        "--ood-option",
        action="append",
        type=parse_key_value,
        metavar="[NAME.]KEY=VALUE",
        help="OOD loader option (repeatable): KEY=VALUE for every OOD set, NAME.KEY=VALUE for the "
        "set NAME only, e.g. cifar10_c.severity=5",
    )
    what.add_argument(
        "--loss-option",
        action="append",
        type=parse_key_value,
        metavar="KEY=VALUE",
        help="extra loss argument (repeatable), e.g. lam=2",
    )
    what.add_argument(
        "--model-option",
        action="append",
        type=parse_key_value,
        metavar="KEY=VALUE",
        help="extra model argument (repeatable), e.g. hidden=512",
    )
    what.add_argument(
        "--dataset-option",
        action="append",
        type=parse_key_value,
        metavar="KEY=VALUE",
        help="extra dataset argument (repeatable), e.g. val_size=5000",
    )

    recipe = p.add_argument_group(
        "recipe (defaults come from --preset; every value can be overridden)"
    )
    recipe.add_argument("--preset", default="paper", help="paper (papers' protocol) or cpu (short)")
    recipe.add_argument("--epochs", type=int, help="training epochs (paper: 350; cpu: 20)")
    recipe.add_argument(
        "--train-size",
        type=int,
        help="train on a class-stratified subset of this many training samples (default: all)",
    )
    recipe.add_argument("--batch-size", type=int, help="global batch, split across processes (128)")
    recipe.add_argument("--eval-batch-size", type=int, help="evaluation batch size (500)")
    recipe.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), help="optimiser (sgd)")
    recipe.add_argument("--lr", type=float, help="learning rate (0.1)")
    recipe.add_argument("--momentum", type=float, help="SGD momentum (0.9)")
    recipe.add_argument("--weight-decay", type=float, help="weight decay (5e-4)")
    recipe.add_argument(
        "--milestones",
        type=int,
        nargs="*",
        help="epochs where lr *= --lr-decay (paper: 150 250; cpu: 10 15)",
    )
    recipe.add_argument("--lr-decay", type=float, help="MultiStepLR factor (0.1)")
    recipe.add_argument(
        "--loss-reduction", choices=("sum", "mean"), help="sum over the batch (papers) or mean"
    )
    recipe.add_argument("--grad-clip", type=float, help="gradient-norm clip (papers: 2)")
    recipe.add_argument("--no-grad-clip", action="store_true", help="disable gradient clipping")
    recipe.add_argument("--seed", type=int, help="seed of init, shuffling and augmentation (1)")
    recipe.add_argument("--n-bins", type=int, help="calibration bins (default 15)")
    recipe.add_argument("--num-workers", type=int, help=argparse.SUPPRESS)

    hw = p.add_argument_group("hardware (Lightning)")
    hw.add_argument("--accelerator", help="auto, cpu, gpu, ...")
    hw.add_argument("--devices", type=_devices, help="number of devices per node, or 'auto'")
    hw.add_argument("--num-nodes", type=int, help="number of nodes (multi-node DDP, e.g. SLURM)")
    hw.add_argument("--strategy", help="auto, ddp, ddp_spawn, ...")
    hw.add_argument("--precision", help="32-true, bf16-mixed, 16-mixed, ...")
    hw.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic algorithms (reproducible, slower on GPU)",
    )

    run = p.add_argument_group("run folder")
    run.add_argument("--out", help="run folder (default runs/DATASET-MODEL-LOSS[-gG]-sSEED)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run in --out from its last checkpoint",
    )
    run.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    run.add_argument("--no-evaluate", action="store_true", help="skip evaluation after training")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_eval_arguments(p: argparse.ArgumentParser, n_bootstrap: int = 1000) -> None:
    p.add_argument(
        "--ts-criterion",
        choices=("ece", "nll"),
        default="ece",
        help="temperature fitted on the validation split by the papers' grid search "
        "on ECE (default) or by minimising the NLL",
    )
    p.add_argument(
        "--n-bootstrap",
        type=int,
        default=n_bootstrap,
        help=f"bootstrap resamples for the 95%% intervals (default {n_bootstrap}; 0: none)",
    )
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap")


def build_parser() -> argparse.ArgumentParser:
    """The ``focalcal`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="focalcal",
        description="Calibration-aware training (focal, FLSD-53, Dual Focal and more), temperature "
        "scaling and the papers' calibration report.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"focalcal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "train",
        help="train a network with a calibration loss, then evaluate it",
        description="Train DATASET/MODEL with LOSS under a preset protocol (Lightning), write a "
        "checkpoint every epoch and the final logits, then evaluate (unless --no-evaluate).",
        epilog="Resume after a crash with: focalcal train --resume --out RUN",
    )
    _add_train_arguments(p)
    _add_eval_arguments(p)

    p = sub.add_parser(
        "evaluate",
        help="metrics pre/post temperature scaling, OOD AUROC, reliability diagrams",
        description="Evaluate a finished run: error, NLL, ECE, AdaECE, Classwise-ECE and smooth "
        "ECE before and after temperature scaling (T fitted on the validation split), with 95%% "
        "bootstrap intervals; OOD AUROC; reliability diagrams; metrics.json and report.md.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run folder written by focalcal train")
    _add_eval_arguments(p)
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
        type=parse_key_value,
        metavar="[NAME.]KEY=VALUE",
        help="--ood loader option (repeatable): KEY=VALUE for every set, NAME.KEY=VALUE for the "
        "set NAME only, e.g. cifar10_c.severity=5",
    )
    p.add_argument("--no-diagrams", action="store_true", help="skip the reliability diagrams")

    p = sub.add_parser(
        "compare",
        help="one table across runs with intervals and p-values against cross-entropy",
        description="Compare evaluated runs (evaluating those that are not): one table like the "
        "papers' Table 1, 95%% intervals, and the paired-bootstrap p-value of each run's ECE "
        "against the cross-entropy run on the same test set.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    _add_eval_arguments(p)
    p.add_argument("--baseline", default="ce", help="loss of the reference run (default ce)")
    p.add_argument("--out", help="folder for compare.md / compare.json (default: print only)")
    p.add_argument("--diagrams", action="store_true", help="overlaid reliability diagrams")

    p = sub.add_parser(
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

    from .training.reproduce import register_cli

    register_cli(sub)  # `reproduce` and `tune-gamma` (they set args.handler)

    p = sub.add_parser("list", help="list the registered datasets, models, losses and presets")
    p.add_argument("what", nargs="?", choices=("datasets", "models", "losses", "presets"))
    return parser


def _train(args: argparse.Namespace) -> int:
    from .training.config import load_config, make_config
    from .training.evaluate import evaluate_run, format_report
    from .training.run import CONFIG_FILE, train

    runtime = {
        "accelerator": args.accelerator,
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "strategy": args.strategy,
        "precision": args.precision,
    }
    if args.resume:
        if not args.out:
            raise ValueError("--resume: expected --out RUN_DIR naming the run to continue")
        config = load_config(Path(args.out) / CONFIG_FILE)
        for key, value in runtime.items():
            if value is not None:
                setattr(config, key, value)
        config.validate()
    else:
        missing = [f"--{n}" for n in ("dataset", "model", "loss") if getattr(args, n) is None]
        if missing:
            raise ValueError(f"train: missing {', '.join(missing)} (see focalcal train --help)")
        overrides = dict(
            gamma=args.gamma,
            data_root=args.data_root,
            ood=args.ood,
            loss_options=dict(args.loss_option or []) or None,
            model_options=dict(args.model_option or []) or None,
            dataset_options=dict(args.dataset_option or []) or None,
            ood_options=dict(args.ood_option or []) or None,
            train_size=args.train_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size,
            optimizer=args.optimizer,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            milestones=args.milestones,
            lr_decay=args.lr_decay,
            loss_reduction=args.loss_reduction,
            grad_clip=args.grad_clip,
            seed=args.seed,
            n_bins=args.n_bins,
            num_workers=args.num_workers,
            deterministic=args.deterministic,
            **runtime,
        )
        config = make_config(args.dataset, args.model, args.loss, args.preset, **overrides)
        if args.no_grad_clip:
            config.grad_clip = None
    out = Path(args.out) if args.out else Path("runs") / _default_run_name(config)
    run_dir = train(
        config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
    )
    if run_dir is None:  # a DDP process other than global rank 0: rank 0 reports
        return 0
    print(f"run finished: {run_dir}")
    if not args.no_evaluate:
        result = evaluate_run(
            run_dir,
            ts_criterion=args.ts_criterion,
            n_bootstrap=args.n_bootstrap,
            seed=args.bootstrap_seed,
        )
        print(format_report(result))
    return 0


def _default_run_name(config: Any) -> str:
    gamma = f"-g{config.gamma:g}" if config.gamma is not None else ""
    return f"{config.dataset}-{config.model}-{config.loss}{gamma}-s{config.seed}"


def _evaluate(args: argparse.Namespace) -> int:
    from .training.evaluate import evaluate_run, format_report

    result = evaluate_run(
        args.run,
        ts_criterion=args.ts_criterion,
        n_bootstrap=args.n_bootstrap,
        seed=args.bootstrap_seed,
        out_dir=args.out,
        recompute_logits=args.recompute_logits,
        ood=args.ood,
        ood_options=dict(args.ood_option or []),
        diagrams=not args.no_diagrams,
    )
    print(format_report(result))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .training.compare import compare_runs

    table = compare_runs(
        args.runs,
        baseline=args.baseline,
        ts_criterion=args.ts_criterion,
        n_bootstrap=args.n_bootstrap,
        seed=args.bootstrap_seed,
        out_dir=args.out,
        diagrams=args.diagrams,
    )
    print(table["markdown"])
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .training.demo import run_demo

    run_demo(
        args.out,
        epochs=args.epochs,
        n_bootstrap=args.n_bootstrap,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from .data import DATASETS
    from .losses import LOSSES
    from .models import MODELS
    from .training.config import PRESETS

    tables = {"datasets": DATASETS, "models": MODELS, "losses": LOSSES, "presets": PRESETS}
    for name, registry in tables.items():
        if args.what in (None, name):
            print(f"{name}: {', '.join(registry.names())}")
    return 0


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "compare": _compare,
    "demo": _demo,
    "list": _list,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``focalcal`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    handler = getattr(args, "handler", None) or _COMMANDS[args.command]
    try:
        return handler(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        print(f"focalcal {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"focalcal {args.command}: error: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
