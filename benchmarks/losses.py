"""Forward+backward time of every focalcal loss as a ratio to ``F.cross_entropy``.

Everything is measured in one run on the same inputs: each loss in turn is timed in rounds of a
burst of ``F.cross_entropy`` steps followed by a burst of its own, and the reported ratio is the
median over rounds of these back-to-back ratios, which is robust to the load of a shared
machine. On CPU with one thread (the default) the clock is the thread's CPU time, so time spent
descheduled by other processes does not count. Targets: FL <= 1.3x, DFL and FLSD-53 <= 1.5x.
On CPU both focal-family kernels are timed: the eager one (the default) and the fused C++ one
(``focalcal.losses.set_cpu_kernel("fused")``, built on first use); ``--cpu-kernel`` picks one.

By default the script re-runs itself with glibc's allocator told to keep freed memory
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``; Linux only).
Otherwise glibc hands blocks above 128 KB back to the OS on ``free`` and maps them anew, so
whether a step's (N, C) tensors page-fault on first touch depends on what ran just before, for
``F.cross_entropy`` and every loss alike; that made ratios swing by ±0.4× between runs. With the
settings the ratios measure compute, as with PyTorch's caching allocator on GPU or jemalloc and
tcmalloc on CPU; ``--allocator default`` measures the unmodified process.

``--real-data`` instead trains a small MLP on the 20 Newsgroups MiniLM sentence embeddings of
``../shared/data`` with each loss (same seed, same schedule) and prints test error, NLL, ECE,
AdaECE and ECE after temperature scaling.

Usage::

    python benchmarks/losses.py                  # CPU (+ CUDA when available)
    python benchmarks/losses.py --real-data      # 20 Newsgroups calibration table
    python benchmarks/losses.py --repeats 30 --device cpu --markdown   # README table
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from focalcal.losses import get_loss, set_cpu_kernel

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
#: glibc malloc settings that keep freed memory in the process (see the module docstring)
STEADY_ALLOCATOR = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 36),
    "MALLOC_TOP_PAD_": str(1 << 28),
}


def _rerun_with_steady_allocator() -> None:
    """Replace this process by the same command with :data:`STEADY_ALLOCATOR` in its environment
    (glibc reads these variables at start-up only)."""
    if sys.platform.startswith("linux") and any(
        os.environ.get(k) != v for k, v in STEADY_ALLOCATOR.items()
    ):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **STEADY_ALLOCATOR})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], logits, target) -> None:
    logits.grad = None
    fn(logits, target).backward()


def bench_shape(
    shape: tuple[int, ...], device: torch.device, repeats: int, validate: bool, burst: int
) -> tuple[dict[str, float], float]:
    """Median over rounds of (loss time / F.cross_entropy time), each pair measured back to back.

    Returns the ratios per loss and the median F.cross_entropy time (seconds per step).
    """
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(shape, generator=gen) * 3).to(device).requires_grad_(True)
    num_classes = shape[1]
    target_shape = (shape[0], *shape[2:])
    target = torch.randint(0, num_classes, target_shape, generator=gen).to(device)
    reference: Callable = lambda x, t: F.cross_entropy(x, t)  # noqa: E731
    fns: dict[str, Callable] = {}
    for name, kwargs in LOSSES:
        fns[name] = get_loss(name, validate=validate, **kwargs).to(device)

    # On CPU with one thread, the thread's CPU time ignores the time other processes hold the
    # core (a shared machine); on CUDA, wall time after a synchronisation.
    clock = (
        time.thread_time
        if device.type == "cpu" and torch.get_num_threads() == 1
        else time.perf_counter
    )

    def timed(fn: Callable) -> float:
        _sync(device)
        start = clock()
        for _ in range(burst):
            _step(fn, logits, target)
        _sync(device)
        return (clock() - start) / burst

    # One loss at a time, each round a burst of F.cross_entropy then a burst of the loss: the
    # pair shares the machine's state of the moment, and no other loss runs in between (MMCE's
    # N×N tensors or Brier's one-hot would otherwise reshape the heap and caches between them).
    ratios: dict[str, list[float]] = {k: [] for k in fns}
    ce_times: list[float] = []
    for name, fn in fns.items():
        for _ in range(2):  # warm-up
            _step(reference, logits, target)
            _step(fn, logits, target)
        for _ in range(repeats):
            ce = timed(reference)
            ratios[name].append(timed(fn) / ce)
            ce_times.append(ce)
    return {k: statistics.median(v) for k, v in ratios.items()}, statistics.median(ce_times)


REAL_LOSSES: list[tuple[str, str, dict]] = [
    ("CE", "ce", {}),
    ("Brier", "brier", {}),
    ("LS-0.05", "label_smoothing", {"eps": 0.05}),
    ("MMCE_w (λ=2)", "mmce_weighted", {"lam": 2.0}),
    ("FL-3", "focal", {"gamma": 3.0}),
    ("FLSD-53", "flsd53", {}),
    ("DFL (γ=3)", "dual_focal", {"gamma": 3.0}),
    ("DFL-SD53", "dual_flsd53", {}),
    ("AdaFocal", "adafocal", {}),
    ("AdaDualFocal", "ada_dual_focal", {"gamma_init": 3.0}),
]


def real_data(data_root: Path, epochs: int, seed: int) -> None:
    """Train a 384-512-20 MLP on 20 Newsgroups MiniLM embeddings with each loss; print a table."""
    from focalcal.calibration import TemperatureScaling
    from focalcal.metrics import adaece, ece

    path = data_root / "20newsgroups" / "20news-bydate-minilm-l6.npz"
    with np.load(path, allow_pickle=False) as d:
        x_all, y_all = torch.from_numpy(d["x_train"]), torch.from_numpy(d["y_train"])
        x_test, y_test = torch.from_numpy(d["x_test"]), torch.from_numpy(d["y_test"])
    perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(1))
    n_val = len(y_all) // 10
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    mean, std = x_all[train_idx].mean(0), x_all[train_idx].std(0) + 1e-6
    x_all, x_test = (x_all - mean) / std, (x_test - mean) / std
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    print(
        f"20 Newsgroups MiniLM-L6 embeddings: train {len(y_train)}, val {len(y_val)}, "
        f"test {len(y_test)}; MLP 384-512-20 (dropout 0.3), Adam lr 1e-3, batch 128, "
        f"{epochs} epochs, seed {seed}, loss reduction 'mean'; metrics on the test set (%)"
    )
    print("| loss | error | NLL | ECE | AdaECE | T | ECE after TS |")
    print("|---|---|---|---|---|---|---|")
    for label, name, kwargs in REAL_LOSSES:
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Linear(384, 512),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.3),
            torch.nn.Linear(512, 20),
        )
        criterion = get_loss(name, **kwargs)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(epochs):
            if hasattr(criterion, "set_epoch"):
                criterion.set_epoch(epoch)
            model.train()
            order = torch.randperm(len(y_train))
            for start in range(0, len(order), 128):
                batch = order[start : start + 128]
                optimizer.zero_grad()
                criterion(model(x_train[batch]), y_train[batch]).backward()
                optimizer.step()
            if hasattr(criterion, "update"):
                model.eval()
                with torch.no_grad():
                    criterion.update(torch.softmax(model(x_val), 1), y_val)
        model.eval()
        with torch.no_grad():
            val_logits, test_logits = model(x_val), model(x_test)
        probs = torch.softmax(test_logits, 1)
        err = 100 * (probs.argmax(1) != y_test).double().mean().item()
        nll = F.cross_entropy(test_logits, y_test).item()
        scaler = TemperatureScaling().fit(val_logits, y_val)
        post = ece(scaler.predict_proba(test_logits), y_test).item()
        print(
            f"| {label} | {err:.2f} | {nll:.3f} | {100 * ece(probs, y_test).item():.2f} | "
            f"{100 * adaece(probs, y_test).item():.2f} | {float(scaler.temperature_):.2f} | "
            f"{100 * post:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="rounds (median is reported)")
    parser.add_argument("--burst", type=int, default=3, help="steps per timing")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--validate", action="store_true", help="time with validate=True")
    parser.add_argument("--markdown", action="store_true", help="print a README table")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1 = least sensitive to a busy machine)"
    )
    parser.add_argument(
        "--allocator",
        choices=["steady", "default"],
        default="steady",
        help="steady: glibc keeps freed memory (no page faults from re-mapping); default: as is",
    )
    parser.add_argument(
        "--cpu-kernel",
        choices=["eager", "fused", "both"],
        default="both",
        help="focal-family CPU kernel(s) to time (fused: the C++ kernel, see set_cpu_kernel)",
    )
    parser.add_argument("--real-data", action="store_true", help="20 Newsgroups calibration table")
    parser.add_argument(
        "--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.allocator == "steady" and not args.real_data:
        _rerun_with_steady_allocator()
    torch.set_num_threads(args.threads)
    if args.real_data:
        real_data(args.data_root, args.epochs, args.seed)
        return
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    steady = all(os.environ.get(k) == v for k, v in STEADY_ALLOCATOR.items())
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, validate={args.validate}, "
        f"allocator {'steady (glibc keeps freed memory)' if steady else 'default'}"
    )
    runs: list[tuple[torch.device, str]] = []
    for device in devices:
        if device.type != "cpu":
            runs.append((device, ""))
            continue
        for kernel in ("eager", "fused") if args.cpu_kernel == "both" else (args.cpu_kernel,):
            if kernel == "fused":
                try:
                    set_cpu_kernel("fused")  # builds on first use (~30 s), cached afterwards
                except RuntimeError as error:
                    print(f"\nfused CPU kernel unavailable, skipped: {error}")
                    continue
            runs.append((device, kernel))
    for device, kernel in runs:
        if kernel:
            set_cpu_kernel(kernel)
        results = {
            s: bench_shape(s, device, args.repeats, args.validate, args.burst) for s in SHAPES
        }
        header = ["loss", *("×".join(map(str, s)) for s in SHAPES)]
        label = device.type.upper() + (f", {kernel} focal-family kernel" if kernel else "")
        print(
            f"\n{label}: forward+backward time / F.cross_entropy "
            f"(median of {args.repeats} paired rounds of {args.burst} steps)"
        )
        _print_table(results, header, args.markdown)


def _print_table(
    results: dict[tuple[int, ...], tuple[dict[str, float], float]],
    header: list[str],
    markdown: bool,
) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print("".join(f"{h:>18}" for h in header))
    for name, _ in LOSSES:
        ratios = [results[s][0][name] for s in SHAPES]
        target = TARGETS.get(name)
        cells = [f"{r:.2f}×" + ("" if target is None or r <= target else " (!)") for r in ratios]
        if markdown:
            label = f"{name} (target ≤ {target}×)" if target else name
            print("| " + " | ".join([label, *cells]) + " |")
        else:
            print(f"{name:>18}" + "".join(f"{c:>18}" for c in cells))
    ref = [f"{results[s][1] * 1e3:.2f} ms" for s in SHAPES]
    if markdown:
        print("| F.cross_entropy (absolute) | " + " | ".join(ref) + " |")
    else:
        print(f"{'CE absolute':>18}" + "".join(f"{c:>18}" for c in ref))


if __name__ == "__main__":
    main()
