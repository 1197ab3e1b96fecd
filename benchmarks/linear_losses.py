"""Fused linear + calibration loss against the materialised path: time and peak memory ratios.

The reference is what a language model does without a fused loss: ``logits = hidden @ W.T``
(N × V), then ``F.cross_entropy``, forward and backward (gradients of hidden and W). Each
configuration (vocabulary × path) runs in a fresh subprocess, which warms up on a tiny problem
(kernels, threads), builds the inputs, records its peak resident memory
(``resource.getrusage(...).ru_maxrss``), runs forward+backward ``--repeats`` times, and reports
the rise of that peak (what the step adds to the inputs) and the fastest repeat: process CPU time
(all threads; robust to the load of a shared machine) and wall time. The parent prints every
ratio to the reference of the same vocabulary, measured in one run.

The children run with glibc's ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB (Linux), so every large
tensor is mapped on allocation and unmapped on free, and the resident peak is the peak of live
tensors. With glibc's default dynamic threshold, freed blocks of tens of MB are kept and reused
in fragments, and the resident peak of a chunked loop grows well past its live memory (the fused
cross-entropy then read 537 MiB where the fused dual focal loss read 98 MiB). Every path runs
under the same policy; all pay for the first-touch page faults of their fresh tensors.

Targets on CPU for dual focal and FLSD-53: peak memory ≤ 1/8 of the materialised cross-entropy
path, time ≤ 1.25× it.

Usage::

    python benchmarks/linear_losses.py                    # N=4096, H=1024, V=32768 and 131072
    python benchmarks/linear_losses.py --vocab 32768 --repeats 1 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from focalcal.losses import linear_calibration_loss

#: path name -> fused loss name (None: the materialised reference)
PATHS: dict[str, str | None] = {
    "materialised ce": None,
    "fused ce": "ce",
    "fused flsd53": "flsd53",
    "fused dual_focal": "dual_focal",
}


def _step(path: str, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor) -> None:
    hidden.grad = weight.grad = None
    loss_name = PATHS[path]
    if loss_name is None:
        loss = F.cross_entropy(hidden @ weight.T, target)
    else:
        loss = linear_calibration_loss(hidden, weight, target, loss=loss_name)
    loss.backward()


def _inputs(tokens: int, width: int, vocab: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(tokens, width, generator=g).requires_grad_()
    # in place: a second (V, H) temporary would raise the baseline peak
    weight = torch.randn(vocab, width, generator=g).div_(width**0.5).requires_grad_()
    target = torch.randint(0, vocab, (tokens,), generator=g)
    return hidden, weight, target


def _child(path: str, tokens: int, width: int, vocab: int, repeats: int) -> dict[str, float]:
    """One configuration, in this (fresh) process."""
    _step(path, *_inputs(64, 64, 256))  # loads the kernels; far below the measured sizes
    inputs = _inputs(tokens, width, vocab)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        _step(path, *inputs)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"cpu_s": min(cpu), "wall_s": min(wall), "peak_mib": (peak - baseline) / 1024}


def _run_child(args: argparse.Namespace, path: str, vocab: int) -> dict[str, float]:
    command = [
        sys.executable, __file__, "--child", path, "--tokens", str(args.tokens),
        "--hidden", str(args.hidden), "--vocab", str(vocab), "--repeats", str(args.repeats),
    ]  # fmt: skip
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32_768, 131_072])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--child", choices=list(PATHS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.tokens, args.hidden, args.vocab[0], args.repeats)))
        return
    print(
        f"N={args.tokens} H={args.hidden}, CPU, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, fastest of {args.repeats}; ratios to materialised ce",
        flush=True,
    )
    header = ("V", "path", "peak MiB", "peak ratio", "CPU s", "CPU ratio", "wall s", "wall ratio")
    rows = []
    for vocab in args.vocab:
        results = {path: _run_child(args, path, vocab) for path in PATHS}
        ref = results["materialised ce"]
        for path, r in results.items():
            rows.append((
                f"{vocab:,}", path, f"{r['peak_mib']:.0f}", f"{r['peak_mib'] / ref['peak_mib']:.3f}",
                f"{r['cpu_s']:.2f}", f"{r['cpu_s'] / ref['cpu_s']:.2f}",
                f"{r['wall_s']:.2f}", f"{r['wall_s'] / ref['wall_s']:.2f}",
            ))  # fmt: skip
            print("  ".join(rows[-1]), flush=True)
    if args.markdown:
        print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
