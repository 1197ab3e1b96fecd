"""Training-epoch time with DFL and FLSD-53 as a ratio to cross-entropy (issue 6: target <= 1.05).

Each epoch is a real ``focalcal`` training epoch: the Lightning trainer of ``focalcal train``
(``CalibrationModule``, SGD + MultiStepLR, summed loss, gradient-norm clipping at 2) on
ResNet-20 with CIFAR-10-sized batches (128 × 3 × 32 × 32 uint8 images, random crop + flip and
normalisation on the device, ``InMemoryLoader``), ``--batches`` steps per epoch. The three losses
are timed round-robin in one process (the machine is shared and noisy); each ratio is the median
epoch time of the loss over the median epoch time of cross-entropy. The per-epoch validation
pass is off so that only the training step is compared.

Usage::

    python benchmarks/training.py                          # CPU, or CUDA when available
    python benchmarks/training.py --device cpu --batches 20 --repeats 3 --markdown
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from focalcal.data import ArrayDataset, InMemoryLoader, make_batch_transform
from focalcal.losses import get_loss
from focalcal.models import get_model
from focalcal.training.config import make_config
from focalcal.training.module import CalibrationModule
from focalcal.training.trainer import make_trainer

LOSSES = (("ce", None), ("flsd53", None), ("dual_focal", 5.0))


class _EpochTimer(L.Callback):
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: list[float] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._sync()
        self.seconds.append(time.perf_counter() - self._start)


def epoch_seconds(
    loss: str, gamma: float | None, data: ArrayDataset, device: torch.device, batches: int
) -> float:
    """Wall time of one training epoch of ``batches`` steps (after one warm-up epoch)."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    config = make_config(
        "cifar10", "resnet20", loss, gamma=gamma, epochs=2, accelerator=accelerator, devices=1
    )
    criterion = get_loss(loss, reduction="sum", **({"gamma": gamma} if gamma else {}))
    module = CalibrationModule(
        get_model("resnet20", num_classes=10),
        criterion,
        config,
        train_loader=lambda trainer: InMemoryLoader(
            data,
            batch_size=128,
            shuffle=True,
            transform=make_batch_transform(data, train=True),
            device=trainer.strategy.root_device,
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(
            config, Path(tmp), checkpoint=Path(tmp) / "last.ckpt", progress=False
        )
        trainer.callbacks = [
            c for c in trainer.callbacks if not isinstance(c, L.pytorch.callbacks.Checkpoint)
        ]
        timer = _EpochTimer(device)
        trainer.callbacks.append(timer)
        trainer.fit(module)
    return timer.seconds[-1]  # epoch 0 warms up (allocator, cuDNN autotuning)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, default=20, help="training steps per epoch")
    parser.add_argument("--repeats", type=int, default=3, help="round-robin repetitions")
    parser.add_argument("--markdown", action="store_true", help="print a README table row")
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n = 128 * args.batches
    data = ArrayDataset(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (n,), generator=g),
        classes=[str(i) for i in range(10)],
        normalization=((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    )
    times: dict[str, list[float]] = {loss: [] for loss, _ in LOSSES}
    for _ in range(args.repeats):
        for loss, gamma in LOSSES:
            times[loss].append(epoch_seconds(loss, gamma, data, device, args.batches))
    base = statistics.median(times["ce"])
    label = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {label}; ResNet-20, batch 128, {args.batches} steps/epoch, {args.repeats} repeats"
    )
    for loss, _ in LOSSES:
        med = statistics.median(times[loss])
        print(f"{loss:>11}: epoch {med:7.3f} s  ratio to CE {med / base:5.3f}  (target <= 1.05)")
    if args.markdown:
        ratios = " | ".join(f"{statistics.median(times[l]) / base:.3f}" for l, _ in LOSSES[1:])
        print(f"| {label} | {base:.2f} s | {ratios} |")


if __name__ == "__main__":
    main()
