"""Forward+backward time of every focalcal loss as a ratio to ``F.cross_entropy``.

All timings of one shape are taken in the same run, interleaved round-robin, and each ratio is
the best (minimum) time of the loss over the best time of ``F.cross_entropy`` on the same inputs:
on a shared, noisy machine, interference only ever adds time, so the minimum is the most stable
estimate of the cost itself (``--stat median`` is available too). Targets (issue 2): FL <= 1.3x, DFL and FLSD-53 <= 1.5x.

Usage::

    python benchmarks/losses.py                  # CPU (+ CUDA when available)
    python benchmarks/losses.py --repeats 30 --device cpu --markdown
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from focalcal.losses import get_loss

SHAPES: list[tuple[int, ...]] = [(4096, 100), (256, 1000), (8, 21, 128, 128)]
LOSSES: list[tuple[str, dict]] = [
    ("ce", {}),
    ("focal", {"gamma": 3.0}),
    ("flsd53", {}),
    ("dual_focal", {"gamma": 5.0}),
    ("dual_flsd53", {}),
    ("inverse_focal", {}),
    ("adafocal", {}),
    ("ada_dual_focal", {}),
    ("brier", {}),
    ("label_smoothing", {}),
    ("mmce", {}),
    ("mmce_weighted", {}),
]
TARGETS = {"focal": 1.3, "dual_focal": 1.5, "flsd53": 1.5}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits, target) -> None:
    logits.grad = None
    fn(logits, target).backward()


def bench_shape(
    shape: tuple[int, ...], device: torch.device, repeats: int, validate: bool
) -> dict[str, list[float]]:
    """Forward+backward seconds per loss and repeat (plus the F.cross_entropy reference)."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(shape, generator=gen) * 3).to(device).requires_grad_(True)
    num_classes = shape[1]
    target_shape = (shape[0], *shape[2:])
    target = torch.randint(0, num_classes, target_shape, generator=gen).to(device)
    fns: dict[str, Callable] = {"F.cross_entropy": lambda x, t: F.cross_entropy(x, t)}
    for name, kwargs in LOSSES:
        fns[name] = get_loss(name, validate=validate, **kwargs).to(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        _step(fn, logits, target)
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            _step(fn, logits, target)
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--stat", choices=["min", "median"], default="min")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--validate", action="store_true", help="time with validate=True")
    parser.add_argument("--markdown", action="store_true", help="print a README table")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 = least sensitive to a busy machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, validate={args.validate}")
    for device in devices:
        stat = min if args.stat == "min" else statistics.median
        results = {
            s: {k: stat(v) for k, v in bench_shape(s, device, args.repeats, args.validate).items()}
            for s in SHAPES
        }
        names = list(results[SHAPES[0]])
        header = ["loss", *("×".join(map(str, s)) for s in SHAPES)]
        print(
            f"\n{device.type.upper()}: forward+backward time / F.cross_entropy ({args.stat} of {args.repeats})"
        )
        if args.markdown:
            print("| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
        else:
            print("".join(f"{h:>18}" for h in header))
        for name in names:
            ratios = [results[s][name] / results[s]["F.cross_entropy"] for s in SHAPES]
            target = TARGETS.get(name)
            cells = [
                f"{r:.2f}×" + ("" if target is None or r <= target else " (!)") for r in ratios
            ]
            if args.markdown:
                label = f"{name} (target ≤ {target}×)" if target else name
                print("| " + " | ".join([label, *cells]) + " |")
            else:
                print(f"{name:>18}" + "".join(f"{c:>18}" for c in cells))
        ref = [f"{results[s]['F.cross_entropy'] * 1e3:.2f} ms" for s in SHAPES]
        print(
            ("| F.cross_entropy absolute | " + " | ".join(ref) + " |")
            if args.markdown
            else f"{'CE absolute':>18}" + "".join(f"{c:>18}" for c in ref)
        )


if __name__ == "__main__":
    main()
