"""Distribution-shift and out-of-distribution sets: CIFAR-10-C / CIFAR-100-C (official ``.npy``
layout) and :func:`get_ood_dataset`, which readies any set for a model trained on another one."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import check_choice, check_int
from .base import (
    DATASETS,
    ArrayDataset,
    Augmentation,
    Normalization,
    default_root,
    get_dataset,
    resolve_normalization,
)
from .io import ensure_downloaded, extract_archive, missing_file_error

__all__ = ["CIFAR_C_CORRUPTIONS", "get_ood_dataset", "load_cifar_c", "resize_images"]

#: The 19 corruptions shipped in CIFAR-10-C / CIFAR-100-C (15 benchmark + 4 extra).
CIFAR_C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip

_ARCHIVES = {
    "cifar10_c": ("https://zenodo.org/record/2535967/files/CIFAR-10-C.tar", "56bf5dcef84df0e2308c6dcbcbbd8499", "CIFAR-10-C"),
    "cifar100_c": ("https://zenodo.org/record/3555552/files/CIFAR-100-C.tar", "11f0ed0f1191edbf9fa23466ae6021d3", "CIFAR-100-C"),
}  # fmt: skip


def load_cifar_c(
    name: str,
    root: Path | None,
    split: str,
    download: bool,
    *,
    corruption: str = "gaussian_noise",
    severity: int = 1,
    classes: list[str] | None = None,
    normalization: Normalization | str | None = "default",
) -> ArrayDataset:
    """CIFAR-10-C / CIFAR-100-C: ``<corruption>.npy`` (50,000 × 32 × 32 × 3 uint8: severities 1–5
    of the 10,000 test images, stacked) and ``labels.npy``. Only ``split="test"`` exists. Files are
    memory-mapped, so only the chosen severity is read. Normalisation: the clean set's."""
    if split != "test":
        raise ValueError(f"split: {name} only has split='test', got {split!r}")
    check_choice(corruption, "corruption", list(CIFAR_C_CORRUPTIONS))
    severity = check_int(severity, "severity", min_value=1)
    if severity > 5:
        raise ValueError(f"severity: expected an integer in 1..5, got {severity}")
    url, md5, sub = _ARCHIVES[name]
    base = Path(root) if root is not None else default_root(name)
    folder = base / sub if (base / sub).is_dir() else base
    if not (folder / "labels.npy").is_file() and download:
        archive = ensure_downloaded(url, base / f"{sub}.tar", md5)
        extract_archive(archive, base)
        folder = base / sub
    images_file, labels_file = folder / f"{corruption}.npy", folder / "labels.npy"
    for f in (images_file, labels_file):
        if not f.is_file():
            raise missing_file_error(f, name, url, " Extract the archive into root.")
    images = np.load(images_file, mmap_mode="r", allow_pickle=False)
    labels = np.load(labels_file, mmap_mode="r", allow_pickle=False)
    if (
        images.ndim != 4
        or images.shape[1:] != (32, 32, 3)
        or len(images) != len(labels)
        or len(images) % 5
    ):
        raise ValueError(
            f"{images_file}: expected (5·N, 32, 32, 3) uint8 images matching labels.npy, got "
            f"{images.shape} and {labels.shape}"
        )
    n = len(images) // 5
    rows = slice((severity - 1) * n, severity * n)
    x = np.ascontiguousarray(images[rows].transpose(0, 3, 1, 2), dtype=np.uint8)
    y = np.array(labels[rows], dtype=np.int64)
    clean = name[:-2]
    n_classes = 10 if clean == "cifar10" else 100
    norm = resolve_normalization(clean if normalization == "default" else normalization)
    return ArrayDataset(
        torch.from_numpy(x),
        torch.from_numpy(y),
        classes or [str(i) for i in range(n_classes)],
        norm,
        name=f"{name}-{corruption}-{severity}",
        split="test",
        augmentation=Augmentation(4, True),
    )


for _name in ("cifar10_c", "cifar100_c"):
    DATASETS.register(_name)(partial(load_cifar_c, _name))


def resize_images(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize uint8 (N, C, H, W) images with antialiased bilinear interpolation (uint8 out)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = F.interpolate(
        images.float(), size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return out.round_().clamp_(0, 255).to(torch.uint8)


def get_ood_dataset(
    name: str,
    like: ArrayDataset,
    root: str | Path | None = None,
    split: str = "test",
    **options: Any,
) -> ArrayDataset:
    """An OOD / shift set ready for a model trained on ``like``.

    Loads ``name`` (e.g. ``"svhn"``, ``"tiny_imagenet"``, ``"cifar10_c"``), resizes its images to
    ``like``'s resolution (Tiny-ImageNet val 64×64 → 32×32 for CIFAR models), converts grey ↔ RGB
    to ``like``'s channels, and normalises it with ``like``'s statistics — the in-distribution
    pipeline, so OOD scores compare like with like.

    Example:
        >>> import torch
        >>> from focalcal.data import ArrayDataset
        >>> like = ArrayDataset(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.tensor([0]), ["a"],
        ...                     normalization=((0.5,) * 3, (0.5,) * 3))
        >>> # get_ood_dataset("svhn", like, root="data/svhn") → SVHN test, 32×32, normalised like `like`
    """
    if not isinstance(like, ArrayDataset) or not like.is_image:
        raise TypeError("like: expected the in-distribution image ArrayDataset")
    if name.replace("-", "_").lower().startswith("tiny") and "image_size" not in options:
        options["image_size"] = like.input_shape[1:]
    ds = get_dataset(name, root=root, split=split, **options)
    x = resize_images(ds.inputs, like.input_shape[1:])
    c_have, c_want = x.shape[1], like.input_shape[0]
    if c_have != c_want:
        if c_have == 1:
            x = x.expand(-1, c_want, -1, -1).contiguous()
        elif c_want == 1:
            w = torch.tensor([0.299, 0.587, 0.114])[:c_have].view(1, -1, 1, 1)
            x = (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        else:
            raise ValueError(f"{name}: cannot map {c_have} channels to {c_want}")
    return replace(ds, inputs=x, normalization=like.normalization, augmentation=like.augmentation)
