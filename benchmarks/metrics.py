"""Calibration-metric benchmark: prints ratios measured in one run (the machine is shared).

1. ECE + AdaECE + Classwise-ECE together over N=1,000,000 x C=100 float32 logits, against one
   ``softmax(dim=1).max(dim=1)`` pass over the same logits (target: <= 3x).
2. ``focalcal.metrics.ece`` against torchmetrics ``MulticlassCalibrationError`` on the same
   probabilities (target: faster).
3. Memory of the streaming state after 1,000,000 samples.
4. Cost of the label-range check that ``validate=False`` keeps (one min/max over the labels), per
   functional call and per streaming ``update`` of a batch, as a fraction of the whole call.

Run: ``python benchmarks/metrics.py [--n 1000000] [--classes 100] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torchmetrics.classification import MulticlassCalibrationError

from focalcal import metrics
from focalcal._validation import check_label_range


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best time of each function, measured round-robin so machine noise hits all alike."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def state_bytes(metric: torch.nn.Module) -> int:
    total = 0
    for name in metric._defaults:  # torchmetrics registers every state here
        value = getattr(metric, name)
        tensors = value if isinstance(value, list) else [value]
        total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def together_vs_softmax(logits: torch.Tensor, labels: torch.Tensor, repeats: int) -> None:
    c = logits.shape[1]

    def three_together() -> object:
        m = metrics.CalibrationMetrics(from_logits=True, smooth=False, num_classes=c)
        m.update(logits, labels)
        return m.compute()

    def three_functional() -> object:
        kw = {"from_logits": True}
        return (
            metrics.ece(logits, labels, **kw),
            metrics.adaece(logits, labels, **kw),
            metrics.classwise_ece(logits, labels, **kw),
        )

    t = interleaved(
        {
            "softmax_max": lambda: logits.softmax(dim=1).max(dim=1),
            "together": three_together,
            "functional": three_functional,
        },
        repeats,
    )
    print("\n1) ECE + AdaECE + Classwise-ECE from logits vs one softmax(dim=1).max(dim=1)")
    print(f"   softmax().max() pass                      {t['softmax_max'] * 1e3:8.1f} ms")
    print(
        f"   CalibrationMetrics (all 7 binned/NLL/Brier) {t['together'] * 1e3:8.1f} ms"
        f"   ratio {t['together'] / t['softmax_max']:.2f}x"
    )
    print(
        f"   ece() + adaece() + classwise_ece()          {t['functional'] * 1e3:8.1f} ms"
        f"   ratio {t['functional'] / t['softmax_max']:.2f}x   (target <= 3x)"
    )


def against_torchmetrics(probs: torch.Tensor, labels: torch.Tensor, repeats: int) -> None:
    c = probs.shape[1]
    tm_metric = MulticlassCalibrationError(num_classes=c, n_bins=15, norm="l1")
    tm_fast = MulticlassCalibrationError(num_classes=c, n_bins=15, norm="l1", validate_args=False)

    def torchmetrics_ece(metric: MulticlassCalibrationError) -> object:
        metric.reset()
        metric.update(probs, labels)
        return metric.compute()

    t = interleaved(
        {
            "ours": lambda: metrics.ece(probs, labels),
            "ours_novalidate": lambda: metrics.ece(probs, labels, validate=False),
            "tm": lambda: torchmetrics_ece(tm_metric),
            "tm_novalidate": lambda: torchmetrics_ece(tm_fast),
        },
        repeats,
    )
    print("\n2) ECE (15 bins) on the same probabilities vs torchmetrics MulticlassCalibrationError")
    print(
        f"   validated:   focalcal {t['ours'] * 1e3:8.1f} ms   torchmetrics {t['tm'] * 1e3:8.1f} ms"
        f"   speed-up {t['tm'] / t['ours']:.2f}x"
    )
    print(
        f"   no checks:   focalcal {t['ours_novalidate'] * 1e3:8.1f} ms   torchmetrics "
        f"{t['tm_novalidate'] * 1e3:8.1f} ms   speed-up {t['tm_novalidate'] / t['ours_novalidate']:.2f}x"
    )
    a = float(metrics.ece(probs, labels))
    b = float(torchmetrics_ece(tm_metric))
    print(f"   values: focalcal {a:.6f}  torchmetrics {b:.6f}")


def streaming_state(logits: torch.Tensor, labels: torch.Tensor) -> None:
    n, c = logits.shape
    print(f"\n3) Streaming state after {n:,} samples (C={c}, 15 bins)")
    streams = {
        "ECE / MCE / RMSCE": metrics.ECE(from_logits=True),
        "ClasswiseECE": metrics.ClasswiseECE(from_logits=True),
        "AdaECE / SmoothECE (pairs)": metrics.AdaECE(from_logits=True),
        "CalibrationMetrics (all)": metrics.CalibrationMetrics(from_logits=True),
    }
    for name, m in streams.items():
        for lo in range(0, n, 250_000):
            m.update(logits[lo : lo + 250_000], labels[lo : lo + 250_000])
        size = state_bytes(m)
        print(f"   {name:28s} {size:>12,d} bytes  ({size / 2**20:.2f} MiB)")
    print(f"   (the logits themselves: {logits.numel() * 4 / 2**20:,.0f} MiB)")


def label_check_cost(probs: torch.Tensor, labels: torch.Tensor, repeats: int) -> None:
    """What the label-range check adds to ``validate=False`` calls and updates."""
    c = probs.shape[1]
    print("\n4) Label-range check kept by validate=False (one min/max over the labels)")
    t = interleaved(
        {
            "check": lambda: check_label_range(labels, c),
            "ece": lambda: metrics.ece(probs, labels, validate=False),
        },
        repeats,
    )
    print(
        f"   ece(validate=False), N={len(labels):,}: check {t['check'] * 1e3:.3f} ms of "
        f"{t['ece'] * 1e3:.1f} ms = {t['check'] / t['ece']:.2%}"
    )
    for batch in (256, 4096):
        p, y = probs[:batch], labels[:batch]
        stream = metrics.ECE(validate=False)
        calls = {
            "check": lambda y=y: check_label_range(y, c),
            "update": lambda p=p, y=y, stream=stream: stream.update(p, y),
        }
        t = interleaved(calls, 10 * repeats)
        print(
            f"   ECE(validate=False).update, batch {batch:5d}: check {t['check'] * 1e6:.1f} us of "
            f"{t['update'] * 1e6:.1f} us = {t['check'] / t['update']:.2%} per update"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only-label-check", action="store_true", help="run section 4 only")
    args = parser.parse_args()
    n, c = args.n, args.classes
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, c, generator=g) * 3
    labels = torch.randint(0, c, (n,), generator=g)
    probs = logits.softmax(1)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, N={n:,}, C={c}, float32")
    if not args.only_label_check:
        together_vs_softmax(logits, labels, args.repeats)
        against_torchmetrics(probs, labels, args.repeats)
        streaming_state(logits, labels)
    label_check_cost(probs, labels, args.repeats)


if __name__ == "__main__":
    main()
