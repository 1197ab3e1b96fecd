"""Corruption generator: distortion grows with severity; each corruption against a direct formula."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np
import pytest
import torch

from focalcal.data import CORRUPTIONS, ArrayDataset, corrupt, corrupt_dataset


def natural_like(n: int = 8, size: int = 32) -> torch.Tensor:
    """Smooth shading + edges + texture, so every corruption has something to destroy."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for k in range(n):
        r = np.random.default_rng(k)
        base = (
            0.5
            + 0.25 * np.sin(xx / (2 + k) + r.uniform(0, 6)) * np.cos(yy / (3 + k))
            + 0.2 * (xx > size // 2 + k)
        )
        im = np.stack([base, np.roll(base, k, 0), base.T]) + r.normal(0, 0.02, (3, size, size))
        out.append(np.clip(im * 255, 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.double() - b.double()) ** 2).mean()
    return float(10 * torch.log10(255.0**2 / mse))


X = natural_like()


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_severity_increases_distortion(name):
    values = []
    for severity in range(1, 6):
        y = corrupt(X, name, severity, seed=0)
        assert y.dtype == torch.uint8 and y.shape == X.shape
        assert not torch.equal(y, X)
        values.append(psnr(y, X))
    assert all(a > b for a, b in itertools.pairwise(values)), values


def test_required_corruptions_present():
    required = {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "gaussian_blur",
        "contrast",
        "brightness",
        "pixelate",
        "jpeg_compression",
    }
    assert required <= set(CORRUPTIONS)
    assert all(len(v) == 5 for v in CORRUPTIONS.values())


def test_gaussian_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter

    for severity in (1, 3, 5):
        sigma = CORRUPTIONS["gaussian_blur"][severity - 1]
        ref = gaussian_filter(
            X.numpy() / 255.0, sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0
        )
        ref = np.round(np.clip(ref, 0, 1) * 255)
        got = corrupt(X, "gaussian_blur", severity).numpy().astype(np.float64)
        assert np.abs(got - ref).max() <= 1  # float32 vs float64 rounding at .5


def test_contrast_matches_formula():
    c = CORRUPTIONS["contrast"][2]
    x = X.numpy() / 255.0
    means = x.mean(axis=(2, 3), keepdims=True)
    ref = np.round(np.clip((x - means) * c + means, 0, 1) * 255)
    assert np.abs(corrupt(X, "contrast", 3).numpy() - ref).max() <= 1


def test_brightness_matches_hsv_value_shift():
    c = CORRUPTIONS["brightness"][4]
    img = X[:2, :, :6, :6]
    got = corrupt(img, "brightness", 5).numpy()
    for n in range(2):
        for i in range(6):
            for j in range(6):
                h, s, v = colorsys.rgb_to_hsv(*(img[n, :, i, j].numpy() / 255.0))
                ref = np.round(np.array(colorsys.hsv_to_rgb(h, s, min(v + c, 1.0))) * 255)
                assert np.abs(got[n, :, i, j] - ref).max() <= 1


def test_noise_statistics():
    gray = torch.full((4, 3, 32, 32), 128, dtype=torch.uint8)
    diff = (corrupt(gray, "gaussian_noise", 5, seed=1).double() - 128) / 255
    assert abs(float(diff.std()) - CORRUPTIONS["gaussian_noise"][4]) < 0.005
    assert abs(float(diff.mean())) < 0.005
    shot = corrupt(gray, "shot_noise", 1, seed=1).double() / 255  # Poisson(x·c)/c is unbiased
    assert abs(float(shot.mean()) - 128 / 255) < 0.005
    amount = CORRUPTIONS["impulse_noise"][4]
    imp = corrupt(gray, "impulse_noise", 5, seed=1)
    changed = imp != 128
    assert abs(float(changed.double().mean()) - amount) < 0.01
    assert set(imp[changed].unique().tolist()) == {0, 255}


def test_reproducible_kinds_and_dataset():
    a, b = corrupt(X, "shot_noise", 2, seed=5), corrupt(X, "shot_noise", 2, seed=5)
    assert torch.equal(a, b) and not torch.equal(a, corrupt(X, "shot_noise", 2, seed=6))
    out = corrupt(X.numpy(), "jpeg_compression", 1)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    gray = corrupt(X[:, :1], "pixelate", 3)
    assert gray.shape == (8, 1, 32, 32)
    ds = ArrayDataset(X, torch.arange(8) % 2, ["a", "b"], ((0.5,) * 3, (0.5,) * 3))
    shifted = corrupt_dataset(ds, "contrast", 4)
    assert torch.equal(shifted.targets, ds.targets) and shifted.normalization == ds.normalization
    assert torch.equal(shifted.inputs, corrupt(X, "contrast", 4))


def test_bad_arguments():
    with pytest.raises(ValueError, match="severity"):
        corrupt(X, "contrast", 6)
    with pytest.raises(ValueError, match="severity"):
        corrupt(X, "contrast", 0)
    with pytest.raises(ValueError, match="name"):
        corrupt(X, "fog", 1)
    with pytest.raises(TypeError, match="uint8"):
        corrupt(X.float(), "contrast", 1)
