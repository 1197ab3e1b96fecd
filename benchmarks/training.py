"""Training-epoch time with DFL and FLSD-53 as a ratio to cross-entropy (issue 6: target <= 1.05).

The steps are real ``focalcal train`` steps: the Lightning trainer and ``CalibrationModule``
(SGD + MultiStepLR, loss summed over the batch, gradient-norm clipping at 2) on ResNet-20 with
CIFAR-10-sized batches (128 × 3 × 32 × 32 uint8 images, random crop + flip and normalisation on
the device by ``InMemoryLoader``). The machine is shared and noisy, so the three losses are
interleaved *step by step* in one run: step k uses cross-entropy, FLSD-53 or DFL (γ=5) for
k mod 3 = 0, 1, 2, and each step is timed (device-synchronised). An epoch of a loss is its steps,
so the epoch-time ratio is the ratio of mean step times (the median ratio is printed too). The
first epoch is a warm-up and is not counted; the per-epoch validation pass is off.

Usage::

    python benchmarks/training.py                          # CPU, or CUDA when available
    python benchmarks/training.py --device cpu --batches 30 --epochs 3 --threads 1 --markdown
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from focalcal.data import ArrayDataset, InMemoryLoader, make_batch_transform
from focalcal.losses import get_loss
from focalcal.models import get_model
from focalcal.training.config import make_config
from focalcal.training.module import CalibrationModule
from focalcal.training.trainer import make_trainer

LOSSES = (("ce", None), ("flsd53", None), ("dual_focal", 5.0))


class _RotatingLosses(CalibrationModule):
    """``CalibrationModule`` whose criterion changes every step: CE, FLSD-53, DFL, CE, ..."""

    def __init__(self, *args: Any, criteria: list[torch.nn.Module], **kwargs: Any) -> None:
        super().__init__(*args, criterion=criteria[0], **kwargs)
        self.criteria = torch.nn.ModuleList(criteria)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.criterion = self.criteria[batch_idx % len(self.criteria)]
        return super().training_step(batch, batch_idx)


class _StepTimer(L.Callback):
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.records: list[tuple[int, int, float]] = []  # (epoch, loss index, seconds)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync()
        index = batch_idx % len(LOSSES)
        self.records.append((trainer.current_epoch, index, time.perf_counter() - self._start))


def step_times(data: ArrayDataset, device: torch.device, epochs: int) -> dict[str, list[float]]:
    """Seconds of every timed step per loss (epoch 0 excluded)."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    config = make_config(
        "cifar10", "resnet20", "ce", epochs=epochs, accelerator=accelerator, devices=1
    )
    criteria = [
        get_loss(loss, reduction="sum", **({"gamma": gamma} if gamma else {}))
        for loss, gamma in LOSSES
    ]
    module = _RotatingLosses(
        get_model("resnet20", num_classes=10),
        config=config,
        criteria=criteria,
        train_loader=lambda trainer: InMemoryLoader(
            data,
            batch_size=128,
            shuffle=True,
            transform=make_batch_transform(data, train=True),
            device=trainer.strategy.root_device,
        ),
    )
    timer = _StepTimer(device)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(
            config, Path(tmp), checkpoint=Path(tmp) / "last.ckpt", progress=False
        )
        trainer.callbacks = [
            c for c in trainer.callbacks if not isinstance(c, L.pytorch.callbacks.Checkpoint)
        ] + [timer]
        trainer.fit(module)
    times: dict[str, list[float]] = {loss: [] for loss, _ in LOSSES}
    for epoch, index, seconds in timer.records:
        if epoch > 0:
            times[LOSSES[index][0]].append(seconds)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, default=30, help="steps per epoch (10 per loss)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is a warm-up)")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU intra-op threads (1: robust on a busy machine)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a README table row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n = 128 * args.batches
    data = ArrayDataset(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (n,), generator=g),
        classes=[str(i) for i in range(10)],
        normalization=((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    )
    times = step_times(data, device, args.epochs)
    if device.type == "cuda":
        label = torch.cuda.get_device_name(device)
    else:
        label = f"CPU ({torch.get_num_threads()} threads)"
    steps = len(times["ce"])
    print(f"device: {label}; ResNet-20, batch 128, {steps} timed steps per loss, interleaved")
    mean_ce, median_ce = statistics.fmean(times["ce"]), statistics.median(times["ce"])
    for loss, _ in LOSSES:
        mean, median = statistics.fmean(times[loss]), statistics.median(times[loss])
        print(
            f"{loss:>11}: step {mean * 1e3:8.1f} ms  epoch-time ratio to CE {mean / mean_ce:5.3f}"
            f"  (median ratio {median / median_ce:5.3f}; target <= 1.05)"
        )
    if args.markdown:
        ratios = " | ".join(
            f"{statistics.fmean(times[name]) / mean_ce:.3f}" for name, _ in LOSSES[1:]
        )
        print(f"| {label} | {mean_ce * 1e3:.0f} ms | {ratios} |")


if __name__ == "__main__":
    main()
