"""OOD sets prepared for an in-distribution model: resolution, channels, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from focalcal.data import ArrayDataset, get_ood_dataset, resize_images


def _like(channels=3, size=32):
    x = torch.zeros(2, channels, size, size, dtype=torch.uint8)
    return ArrayDataset(x, torch.tensor([0, 1]), ["a", "b"], ((0.1,) * channels, (0.3,) * channels))


def test_svhn_test_as_ood_for_cifar_and_mnist(tmp_path):
    from scipy.io import savemat

    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[1], [2], [10], [4]])})
    ood = get_ood_dataset("svhn", like=_like(), root=tmp_path)
    assert ood.input_shape == (3, 32, 32) and ood.normalization == ((0.1,) * 3, (0.3,) * 3)
    assert np.array_equal(ood.inputs.permute(2, 3, 1, 0).numpy(), x)  # untouched pixels
    gray = get_ood_dataset("svhn", like=_like(channels=1, size=28), root=tmp_path)
    assert gray.input_shape == (1, 28, 28)
    ref = (
        x.astype(np.float64).transpose(3, 2, 0, 1)
        * np.array([0.299, 0.587, 0.114])[None, :, None, None]
    ).sum(1, keepdims=True)
    ref = F.interpolate(torch.from_numpy(ref), size=(28, 28), mode="bilinear", antialias=True)
    assert (gray.inputs.double() - ref).abs().max() <= 2  # resize then grey vs grey then resize


def test_tiny_imagenet_val_resized_to_in_distribution(tmp_path):
    from PIL import Image

    base = tmp_path / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("n1\nn0\n")
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(img).save(base / "val" / "images" / "val_0.JPEG")
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn1\t0\t0\t1\t1\n")
    ood = get_ood_dataset("tiny_imagenet", like=_like(), root=tmp_path, cache=False)
    assert ood.input_shape == (3, 32, 32) and ood.targets.tolist() == [1] and ood.split == "test"
    decoded = np.asarray(Image.open(base / "val" / "images" / "val_0.JPEG").convert("RGB"))
    ref = np.asarray(Image.fromarray(decoded).resize((32, 32), Image.Resampling.BILINEAR))
    assert np.array_equal(ood.inputs[0].permute(1, 2, 0).numpy(), ref)


def test_resize_images_and_errors():
    x = torch.full((2, 3, 8, 8), 77, dtype=torch.uint8)
    assert resize_images(x, (8, 8)) is x
    assert torch.equal(resize_images(x, (4, 5)), torch.full((2, 3, 4, 5), 77, dtype=torch.uint8))
    with pytest.raises(TypeError, match="like"):
        get_ood_dataset("svhn", like=ArrayDataset(torch.zeros(2, 4), torch.tensor([0, 0]), ["a"]))
