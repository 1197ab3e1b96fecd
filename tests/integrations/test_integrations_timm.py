"""timm's real Mixup and a timm.create_model network training with focalcal losses."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")
from PIL import Image  # noqa: E402
from timm.data import Mixup  # noqa: E402
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy  # noqa: E402

from focalcal.integrations.timm import (  # noqa: E402
    create_train_loss,
    mixup_active,
    train_loss_from_args,
)

SHARED = Path(os.environ.get("FOCALCAL_SHARED", Path(__file__).resolve().parents[3] / "shared"))
CIFAR10 = SHARED / "data" / "cifar10-jpeg" / "train"


def _cifar_batch(tmp_path: Path, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """n real CIFAR-10 training images (JPEG copy) when ../shared has them, else JPEGs written here."""
    if CIFAR10.is_dir():
        classes = sorted(p.name for p in CIFAR10.iterdir())
        files = [(sorted((CIFAR10 / classes[i % 10]).iterdir())[i // 10], i % 10) for i in range(n)]
    else:
        rng = np.random.default_rng(0)
        files = []
        for i in range(n):
            path = tmp_path / f"{i}.jpg"
            pixels = (rng.random((32, 32, 3)) * 255 * (0.2 + 0.08 * (i % 10))).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=75)
            files.append((path, i % 10))
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p, _ in files])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.25)
    return x, torch.tensor([k for _, k in files])


def test_mixup_targets_train_a_timm_model_with_focal_losses(tmp_path) -> None:
    x, y = _cifar_batch(tmp_path)
    assert x.shape == (16, 3, 32, 32)
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10)
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=10)
    criterion = create_train_loss("dual_focal", mixup=True, gamma=3.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    fixed_x, fixed_q = mixup(x.clone(), y.clone())
    assert fixed_q.shape == (16, 10) and fixed_q.dtype.is_floating_point
    assert torch.allclose(fixed_q.sum(1), torch.ones(16)) and float(fixed_q.max()) < 1.0
    # γ = 0 on Mixup's targets is timm's own SoftTargetCrossEntropy: values and gradients
    logits = model(fixed_x)
    ours = create_train_loss("focal", mixup=True, gamma=0.0)(logits, fixed_q)
    theirs = SoftTargetCrossEntropy()(logits, fixed_q)
    assert torch.allclose(ours, theirs, rtol=1e-6)
    g_ours = torch.autograd.grad(ours, logits, retain_graph=True)[0]
    g_theirs = torch.autograd.grad(theirs, logits)[0]
    assert torch.allclose(g_ours, g_theirs, rtol=1e-5, atol=1e-8)
    model.eval()
    with torch.no_grad():
        before = float(criterion(model(fixed_x), fixed_q))
    model.train()
    for _ in range(8):
        images, targets = mixup(x.clone(), y.clone())
        loss = criterion(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        after = float(criterion(model(fixed_x), fixed_q))
    assert after < before


def test_smoothing_mirrors_timm_label_smoothing_cross_entropy() -> None:
    logits = torch.randn(8, 10, dtype=torch.float64)
    labels = torch.randint(0, 10, (8,))
    expected = LabelSmoothingCrossEntropy(smoothing=0.1)(logits, labels)
    for name, kwargs in (("focal", {"gamma": 0.0}), ("ce", {}), ("dual_focal", {"gamma": 0.0})):
        loss = create_train_loss(name, smoothing=0.1, **kwargs)
        assert torch.allclose(loss(logits, labels), expected, rtol=1e-12), name
    # with Mixup active the smoothing is in the targets, not the loss (timm's choice)
    assert create_train_loss("focal", mixup=True, smoothing=0.1).label_smoothing == 0.0


def test_train_loss_from_timm_arguments() -> None:
    args = argparse.Namespace(mixup=0.0, cutmix=0.0, cutmix_minmax=None, smoothing=0.1)
    assert not mixup_active(args)
    assert train_loss_from_args(args, "flsd53").label_smoothing == 0.1
    args.cutmix = 1.0
    assert mixup_active(args)
    assert train_loss_from_args(args, "flsd53").label_smoothing == 0.0


def test_losses_without_the_needed_form_raise() -> None:
    with pytest.raises(ValueError, match="'mmce' has no soft-target form"):
        create_train_loss("mmce", mixup=True)
    with pytest.raises(ValueError, match="smoothing: the 'brier' loss has no label_smoothing"):
        create_train_loss("brier", smoothing=0.1)
    with pytest.raises(ValueError, match=r"args\.jsd_loss"):
        train_loss_from_args(argparse.Namespace(jsd_loss=True, mixup=0.0, cutmix=0.0))
    with pytest.raises(ValueError, match="label_smoothing: expected a number in"):
        create_train_loss("focal", smoothing=1.5)
