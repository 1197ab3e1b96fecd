"""Tiny-ImageNet-200 in its official layout."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .base import (
    DATASETS,
    ArrayDataset,
    Augmentation,
    Normalization,
    default_root,
    resolve_normalization,
)
from .io import (
    IMAGE_EXTENSIONS,
    decode_images,
    ensure_downloaded,
    extract_archive,
    missing_file_error,
)

__all__ = ["TINY_IMAGENET_URL", "load_tiny_imagenet"]

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
_INDEX = re.compile(r"_(\d+)\.[A-Za-z]+$")


def _find_root(root: Path) -> Path | None:
    for candidate in (root, root / "tiny-imagenet-200"):
        if (candidate / "wnids.txt").is_file():
            return candidate
    return None


def _official_val_files(found: Path, label_of: dict[str, int]) -> tuple[list[Path], list[int]]:
    """The official validation images (our ``"test"`` split) and their labels."""
    ann = found / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise missing_file_error(ann, "tiny_imagenet", TINY_IMAGENET_URL)
    paths, labels = [], []
    for line in ann.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        if parts[1] not in label_of:
            raise ValueError(f"{ann}: unknown wnid {parts[1]!r} for {parts[0]} (not in wnids.txt)")
        paths.append(found / "val" / "images" / parts[0])
        labels.append(label_of[parts[1]])
    return paths, labels


def _train_files(
    found: Path, wnids: list[str], label_of: dict[str, int], split: str, val_per_class: int
) -> tuple[list[Path], list[int]]:
    """The training images of ``split``: the last ``val_per_class`` of each class for
    ``"val"``, the others for ``"train"``."""
    train_dir = found / "train"
    if not train_dir.is_dir():
        raise missing_file_error(
            train_dir, "tiny_imagenet", TINY_IMAGENET_URL, " (split='train'/'val' need train/)"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for wnid in wnids:
        folder = train_dir / wnid / "images"
        if not folder.is_dir():
            raise missing_file_error(folder, "tiny_imagenet", TINY_IMAGENET_URL)
        files = [f for f in folder.iterdir() if f.name.lower().endswith(IMAGE_EXTENSIONS)]
        indexed = sorted((int(m.group(1)), f) for f in files if (m := _INDEX.search(f.name)))
        cut = len(indexed) - val_per_class
        chosen = indexed[cut:] if split == "val" else indexed[:cut]
        paths += [f for _, f in chosen]
        labels += [label_of[wnid]] * len(chosen)
    return paths, labels


@DATASETS.register("tiny_imagenet")
def load_tiny_imagenet(
    root: Path | None,
    split: str,
    download: bool,
    *,
    val_per_class: int = 50,
    image_size: int | tuple[int, int] | None = None,
    normalization: Normalization | str | None = "default",
    augmentation: Augmentation | None = None,
    cache: bool | str | os.PathLike[str] = True,
) -> ArrayDataset:
    """Read Tiny-ImageNet-200: ``wnids.txt``, ``train/<wnid>/images/<wnid>_<k>.JPEG``,
    ``val/images/*.JPEG`` + ``val/val_annotations.txt``.

    Splits follow the dual-focal-loss protocol, so temperatures are never tuned on the test set:
    ``"test"`` = the official validation set (10,000 images; ``train/`` may be absent);
    ``"val"`` = the training images with ``k >= 500 − val_per_class`` (the last 50 of every class,
    10,000 images); ``"train"`` = the rest (90,000). Classes are the sorted wnids (torchvision
    ImageFolder order, as in the official code). ``image_size`` resizes (e.g. ``32`` for an OOD
    set next to CIFAR). Normalisation: ImageNet statistics. Decoded images are cached as ``.npy``.
    """
    base = Path(root) if root is not None else default_root("tiny_imagenet")
    found = _find_root(base)
    if found is None and download:
        archive = ensure_downloaded(
            TINY_IMAGENET_URL, base / "tiny-imagenet-200.zip", TINY_IMAGENET_MD5
        )
        extract_archive(archive, base)
        found = _find_root(base)
    if found is None:
        raise missing_file_error(
            base / "wnids.txt", "tiny_imagenet", TINY_IMAGENET_URL, " Unzip it into root."
        )
    wnids = sorted(w.strip() for w in (found / "wnids.txt").read_text().split() if w.strip())
    label_of = {w: i for i, w in enumerate(wnids)}
    if split == "test":
        paths, labels = _official_val_files(found, label_of)
    else:
        paths, labels = _train_files(found, wnids, label_of, split, val_per_class)
    missing = [p for p in paths[:: max(1, len(paths) // 50)] if not p.is_file()]
    if missing:
        raise missing_file_error(missing[0], "tiny_imagenet", TINY_IMAGENET_URL)
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    x = decode_images(paths, image_size=size, mode="RGB", cache=cache)
    norm = resolve_normalization("tiny_imagenet" if normalization == "default" else normalization)
    return ArrayDataset(
        torch.from_numpy(x),
        torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        wnids,
        norm,
        name="tiny_imagenet",
        split=split,
        augmentation=augmentation or Augmentation(4, True),
    )
