"""Common corruptions at 5 severities (Hendrycks & Dietterich, ICLR 2019, CIFAR-10-C parameters).

For when the official CIFAR-10-C files are not at hand: ``corrupt(images, name, severity)`` maps
uint8 (N, C, H, W) images to corrupted uint8 images of the same shape, batched in torch (JPEG and
pixelate go through PIL image by image, exactly as ``make_cifar_c.py``). The severity constants
are those of ``make_cifar_c.py``. One deliberate difference: results are rounded to uint8, where
``make_cifar_c.py`` truncates (``np.uint8(...)``), which darkens every image by half a grey level.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._optional import require
from .._validation import as_tensor, check_choice, check_int, restore_kind
from .base import ArrayDataset

__all__ = ["CORRUPTIONS", "corrupt", "corrupt_dataset"]

#: name → the 5 severity parameters of make_cifar_c.py
CORRUPTIONS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # std of N(0, c) added on [0, 1]
    "shot_noise": (500, 250, 100, 75, 50),  # Poisson(x·c)/c
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper amount
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # x + x·N(0, c)
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma in pixels
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # (x − mean)·c + mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # HSV value + c
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # box down-sample by c, then up
    "jpeg_compression": (80, 65, 58, 50, 40),  # JPEG quality
}


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    radius = max(1, int(4 * sigma + 0.5))  # scikit-image / scipy: truncate=4
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _brightness(x: Tensor, c: float) -> Tensor:
    v = x.amax(dim=1, keepdim=True)  # HSV value; hue and saturation are kept
    new_v = (v + c).clamp(0, 1)
    scaled = x * (new_v / v.clamp_min(1e-12))
    return torch.where(v > 0, scaled, new_v.expand_as(x))


def _per_image_pil(x: np.ndarray, name: str, c: float) -> np.ndarray:
    """JPEG re-encoding and box-filter pixelation, image by image with PIL (as make_cifar_c.py)."""
    Image = require("PIL.Image", "data")
    out = np.empty_like(x)
    h, w = x.shape[-2:]
    for i, img in enumerate(x):
        arr = img.transpose(1, 2, 0)
        pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
        if name == "jpeg_compression":
            buf = io.BytesIO()
            pil.save(buf, "JPEG", quality=int(c))
            buf.seek(0)
            pil = Image.open(buf)
        else:
            small = (max(1, int(w * c)), max(1, int(h * c)))
            pil = pil.resize(small, Image.Resampling.BOX).resize((w, h), Image.Resampling.BOX)
        dec = np.asarray(pil)
        out[i] = dec[None] if dec.ndim == 2 else dec.transpose(2, 0, 1)
    return out


def corrupt(
    images: Tensor | np.ndarray, name: str, severity: int = 1, seed: int | None = 0
) -> Tensor | np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1–5) to uint8 images (N, C, H, W).

    .. math::
        \\text{gaussian\\_noise}: \\; y = \\mathrm{clip}(x + \\epsilon, 0, 1),\\quad
        \\epsilon \\sim \\mathcal{N}(0, c_s^2) \\qquad
        \\text{contrast}: \\; y = (x - \\bar{x}) c_s + \\bar{x}

    and likewise for the others (see :data:`CORRUPTIONS`), computed on ``x/255`` and rounded back
    to uint8. Noise draws come from a private generator seeded by ``seed`` (``None``: global RNG).
    Returns the same kind (tensor or ndarray) and device as the input.

    Example:
        >>> import torch
        >>> from focalcal.data import corrupt
        >>> x = torch.full((2, 3, 8, 8), 128, dtype=torch.uint8)
        >>> y = corrupt(x, "contrast", severity=5)
        >>> y.dtype, bool((y == 128).all())
        (torch.uint8, True)
    """
    check_choice(name, "name", list(CORRUPTIONS))
    severity = check_int(severity, "severity", min_value=1)
    if severity > 5:
        raise ValueError(f"severity: expected an integer in 1..5, got {severity}")
    x, was_numpy = as_tensor(images, "images")
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise TypeError(
            f"images: expected uint8 (N, C, H, W), got dtype {x.dtype}, shape {tuple(x.shape)}"
        )
    c = CORRUPTIONS[name][severity - 1]
    if name in ("jpeg_compression", "pixelate"):
        out = torch.from_numpy(_per_image_pil(x.cpu().numpy(), name, c)).to(x.device)
        return restore_kind(out, was_numpy)
    g = torch.Generator(device=x.device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    f = x.to(torch.float32) / 255.0
    if name == "gaussian_noise":
        f = f + c * torch.randn(f.shape, generator=g, device=f.device)
    elif name == "shot_noise":
        f = torch.poisson(f * c, generator=g) / c
    elif name == "impulse_noise":
        u = torch.rand(f.shape, generator=g, device=f.device)
        salt = torch.rand(f.shape, generator=g, device=f.device) < 0.5
        f = torch.where(u < c, salt.to(f.dtype), f)
    elif name == "speckle_noise":
        f = f + f * c * torch.randn(f.shape, generator=g, device=f.device)
    elif name == "gaussian_blur":
        f = _gaussian_blur(f, float(c))
    elif name == "contrast":
        mean = f.mean(dim=(2, 3), keepdim=True)  # per image and channel, as make_cifar_c.py
        f = (f - mean) * c + mean
    elif name == "brightness":
        f = _brightness(f, float(c)) if f.shape[1] == 3 else f + c
    out = (f.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return restore_kind(out, was_numpy)


def corrupt_dataset(
    dataset: ArrayDataset, name: str, severity: int = 1, seed: int | None = 0
) -> ArrayDataset:
    """``dataset`` with every image corrupted (same labels, classes and normalisation).

    Example:
        >>> import torch
        >>> from focalcal.data import ArrayDataset, corrupt_dataset
        >>> ds = ArrayDataset(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
        >>> corrupt_dataset(ds, "brightness", 5).name
        'dataset-brightness-5'
    """
    if not isinstance(dataset, ArrayDataset) or not dataset.is_image:
        raise TypeError("dataset: expected an image ArrayDataset")
    out = corrupt(dataset.inputs, name, severity, seed)
    assert isinstance(out, Tensor)
    return replace(dataset, inputs=out, name=f"{dataset.name}-{name}-{severity}")
