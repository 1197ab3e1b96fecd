"""Training input pipeline vs. ResNet-20 forward+backward, measured in the same run.

The pipeline is what the trainer does per step with focalcal.data: pick a batch of 128 uint8 CIFAR
images from the in-memory tensor (already on the device), random-crop (pad 4) + flip, normalise
(``InMemoryLoader`` + ``make_batch_transform``). The model step is ResNet-20 forward + backward +
SGD step on that batch. The pipeline must not be the bottleneck: ``model / pipeline`` ≫ 1.

A per-sample Python loop (what a torchvision ``Dataset`` + ``DataLoader`` with ``RandomCrop`` /
``RandomHorizontalFlip`` / ``Normalize`` does per image, here in torch without PIL, i.e. a lower
bound on its cost) is timed too, to show what the vectorised transform saves.

Usage: python benchmarks/data.py [--device cuda] [--steps 20] [--threads 1] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from focalcal.data import ArrayDataset, InMemoryLoader, get_dataset, make_batch_transform
from focalcal.models import get_model

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(median, best) seconds per call over ``steps`` calls; on a shared, noisy machine the best
    is the closest to the intrinsic cost, the median to what a run sees."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def per_sample_loop(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Reference: one image at a time, as a map-style Dataset would do it."""
    out = []
    for img in x:
        oy, ox = torch.randint(0, 9, (2,)).tolist()
        img = F.pad(img, (4, 4, 4, 4))[:, oy : oy + 32, ox : ox + 32]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        out.append((img.float() / 255 - mean) / std)
    return torch.stack(out)


def load(data: Path | None) -> tuple[ArrayDataset, str]:
    if data is not None and data.is_dir():
        ds = get_dataset("imagefolder", root=data, split="train", normalization="cifar10")
        return ds, f"CIFAR-10 JPEG copy ({len(ds)} train images, decoded once, cached)"
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8, generator=g)
    return ArrayDataset(
        x, torch.randint(0, 10, (50000,)), [str(i) for i in range(10)], (MEAN, STD)
    ), "synthetic uint8 50000×3×32×32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg"
    parser.add_argument("--data", type=Path, default=default_data)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    t0 = time.perf_counter()
    ds, what = load(args.data)
    load_s = time.perf_counter() - t0
    loader = InMemoryLoader(
        ds, args.batch_size, shuffle=True, train=True, device=device, drop_last=True
    )
    batches = iter(loader)
    next(batches)  # moves the uint8 tensor to the device once

    def pipeline_step() -> None:
        nonlocal batches
        try:
            next(batches)
        except StopIteration:
            batches = iter(loader)
            next(batches)

    t_pipe = timed(pipeline_step, device, args.steps * 5)

    model = get_model("resnet20", num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    xb, yb = next(iter(loader))

    def model_step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    t_model = timed(model_step, device, args.steps)

    mean = torch.tensor(MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(STD, device=device).view(3, 1, 1)
    raw = ds.inputs[: args.batch_size].to(device)
    t_loop = timed(lambda: per_sample_loop(raw, mean, std), device, max(3, args.steps // 4))
    eval_transform = make_batch_transform(ds, train=False)
    t_eval = timed(lambda: eval_transform(raw), device, args.steps * 5)

    b = args.batch_size
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads, {os.cpu_count()} cores)"
    )
    print(f"device: {name}; data: {what}; first load {load_s:.1f} s")
    print(
        f"batch {b}; milliseconds per batch, median / best of {args.steps}+ steps; images/s from the median"
    )
    rows = [
        ("pipeline (index + crop + flip + normalise)", t_pipe),
        ("eval transform (normalise only)", t_eval),
        ("per-sample loop (reference)", t_loop),
        ("resnet20 forward + backward + SGD step", t_model),
    ]
    for label, (med, best) in rows:
        print(f"  {label:44s}: {med * 1e3:9.3f} / {best * 1e3:9.3f} ms  {b / med:12,.0f} img/s")
    print(
        f"ratio model / pipeline = {t_model[0] / t_pipe[0]:.1f}x median, {t_model[1] / t_pipe[1]:.1f}x best"
        " (> 1: the pipeline is not the bottleneck)"
    )
    print(
        f"ratio per-sample loop / vectorised pipeline = {t_loop[0] / t_pipe[0]:.1f}x median, "
        f"{t_loop[1] / t_pipe[1]:.1f}x best"
    )


if __name__ == "__main__":
    main()
