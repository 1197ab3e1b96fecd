"""Class-per-folder image trees (ImageFolder layout) of JPEG/PNG files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .base import (
    DATASETS,
    ArrayDataset,
    Augmentation,
    Normalization,
    carve_split,
    resolve_normalization,
)
from .io import IMAGE_EXTENSIONS, decode_images

__all__ = ["list_image_folder", "load_imagefolder"]


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def list_image_folder(
    folder: Path, classes: list[str] | None = None
) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image files under ``folder/<class>/**`` (sorted) and their labels.

    ``classes`` fixes the class order (e.g. the training folder's); by default the sorted
    sub-folder names, as torchvision's ImageFolder.
    """
    present = _class_dirs(folder)
    if classes is None:
        classes = present
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise ValueError(
            f"{folder}: class folders {unknown[:5]} are not among the training classes"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        cdir = folder / cls
        if not cdir.is_dir():
            continue
        files = []  # strings: sorting Path objects is several times slower
        for dirpath, _, filenames in os.walk(cdir):
            files += [
                os.path.join(dirpath, f) for f in filenames if f.lower().endswith(IMAGE_EXTENSIONS)
            ]
        files.sort()
        paths += map(Path, files)
        labels += [label] * len(files)
    if not paths:
        raise ValueError(
            f"{folder}: no images found; expected {folder}/<class>/<image>.jpg|png "
            f"(extensions {', '.join(IMAGE_EXTENSIONS)})"
        )
    return paths, np.asarray(labels, dtype=np.int64), classes


def _size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


@DATASETS.register("imagefolder")
def load_imagefolder(
    root: Path | None,
    split: str = "train",
    download: bool = False,
    *,
    val_size: int | float = 0.1,
    seed: int = 1,
    image_size: int | tuple[int, int] | None = None,
    mode: str = "RGB",
    normalization: Normalization | str | None = "auto",
    augmentation: Augmentation | None = None,
    cache: bool | str | os.PathLike[str] = True,
    name: str | None = None,
) -> ArrayDataset:
    """Read a class-per-folder tree of images into memory.

    Layouts:

    * ``root/{train,test}/<class>/*.jpg`` (and optionally ``root/val/``): ``split`` picks the
      folder; without ``root/val``, ``split="val"`` is carved from ``train`` with the papers'
      recipe (:func:`paper_split_indices`, ``val_size`` 10 %, ``seed`` 1) and ``"train"`` is the
      rest.
    * ``root/<class>/*.jpg`` (a bare tree): ``"test"`` is the whole tree, ``"train"``/``"val"``
      the carve.

    Class order = the sorted folder names of the training folder (torchvision ImageFolder order).
    Images are decoded once with a thread pool and cached as ``.npy`` (``cache``; see
    :func:`focalcal.data.io.decode_images`), so the second load is a file read.
    ``normalization="auto"`` uses the per-channel statistics of the training folder
    (``"cifar10"``, ``"imagenet"``, an explicit ``(mean, std)`` or ``None`` also work).

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from PIL import Image
        >>> from focalcal.data import get_dataset
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for cls in ("cat", "dog"):
        ...     (root / "test" / cls).mkdir(parents=True)
        ...     Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "test" / cls / "0.png")
        >>> ds = get_dataset("imagefolder", root=root, split="test", normalization=None, cache=False)
        >>> len(ds), ds.input_shape, ds.classes
        (2, (3, 8, 8), ['cat', 'dog'])
    """
    if download:
        raise ValueError(
            "download: imagefolder data are the user's own files; there is nothing to download"
        )
    if root is None:
        raise ValueError("root: the imagefolder dataset needs root=<folder>, got None")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"imagefolder: folder not found: {root}. Expected root/<class>/<image> or "
            f"root/{{train,test}}/<class>/<image>."
        )
    size = _size(image_size)
    split_layout = (root / "train").is_dir() or (root / "test").is_dir()
    train_dir = root / "train" if split_layout else root
    carve = split in ("train", "val") and not (split_layout and (root / "val").is_dir())
    if split_layout:
        folder = train_dir if carve else root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"imagefolder: split folder not found: {folder}")
    else:
        folder = root
    classes = _class_dirs(train_dir) if train_dir.is_dir() else None

    def load(f: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        paths, labels, cls = list_image_folder(f, classes)
        arr = decode_images(paths, image_size=size, mode=mode, cache=cache)
        return torch.from_numpy(arr), torch.from_numpy(labels), cls

    x, y, classes = load(folder)
    train_x = x if folder == train_dir else None
    if isinstance(normalization, str) and normalization == "auto" and train_x is None:
        train_x = load(train_dir)[0] if train_dir.is_dir() else x
    norm = resolve_normalization(normalization, train_x)
    ds = ArrayDataset(
        x,
        y,
        classes,
        norm,
        name=name or root.name,
        split=split,
        augmentation=augmentation or Augmentation(),
    )
    return carve_split(ds, split, val_size, seed) if carve else ds
