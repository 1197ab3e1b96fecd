"""MNIST and Fashion-MNIST in the official idx format (raw or ``.gz``)."""

from __future__ import annotations

import gzip
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .base import (
    DATASETS,
    ArrayDataset,
    Augmentation,
    Normalization,
    carve_split,
    default_root,
    resolve_normalization,
)
from .io import ensure_downloaded, missing_file_error

__all__ = ["DEBIAN_FASHION_MNIST", "MNIST_FILES", "load_mnist", "read_idx"]

#: Where Debian's ``dataset-fashion-mnist`` package installs the official files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: name → (base URL, {file: md5 of the official .gz}, class names)
MNIST_FILES: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        [str(i) for i in range(10)],
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
    ),
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (``.gz`` or raw): 2 zero bytes, dtype code, ndim, big-endian int32 dims."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read ({err}); the file may be corrupt") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number {raw[:4]!r})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: idx header says shape {dims} ({expected} data bytes) but the file has "
            f"{len(raw) - header}; it is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).copy()


def _check_idx_contents(paths: list[Path], images: np.ndarray, labels: np.ndarray) -> None:
    """The official layout: (N, H, W) unsigned-byte images and (N,) integer labels."""
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{paths[0]}, {paths[1]}: expected (N, H, W) images and (N,) labels, got "
            f"{images.shape} and {labels.shape}"
        )
    # a cast of float pixels in [0, 1] to uint8 would give all-black images, silently
    if images.dtype != np.uint8:
        raise ValueError(
            f"{paths[0]}: expected unsigned-byte pixels (idx type 0x08) as in the official "
            f"files, got {images.dtype.name}; write the images as uint8 in 0..255"
        )
    if labels.dtype.kind not in "ui" or (labels.size and int(labels.min()) < 0):
        raise ValueError(
            f"{paths[1]}: expected non-negative integer labels (idx type 0x08), got "
            f"{labels.dtype}"
            + (f" with minimum {labels.min()}" if labels.dtype.kind == "i" else "")
        )


def _locate(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for candidate in (
            folder / stem,
            folder / f"{stem}.gz",
            folder / "raw" / stem,
            folder / "raw" / f"{stem}.gz",
        ):
            if candidate.is_file():
                return candidate
    return None


def load_mnist(
    name: str,
    root: Path | None,
    split: str,
    download: bool,
    *,
    val_size: int | float = 0.1,
    seed: int = 1,
    normalization: Normalization | str | None = "default",
    augmentation: Augmentation | None = None,
) -> ArrayDataset:
    """Read MNIST / Fashion-MNIST idx files (``*-idx?-ubyte`` or ``.gz``) from ``root``.

    Without ``root``, looks in ``$FOCALCAL_DATA/<name>`` and, for Fashion-MNIST, in Debian's
    ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``). ``download=True``
    fetches the official ``.gz`` files and checks their MD5. As for every dataset without an
    official validation set, ``split="val"`` is drawn from the 60,000 training images with
    :func:`paper_split_indices` (``val_size=0.1``, ``seed=1``) and ``"train"`` is the rest;
    ``val_size=0`` keeps all 60,000 for training.
    Augmentation: crop with 2-pixel padding, horizontal flip only for Fashion-MNIST.
    """
    base_url, files, classes = MNIST_FILES[name]
    folders = [Path(root)] if root is not None else [default_root(name)]
    if root is None and name == "fashion_mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    prefix = "t10k" if split == "test" else "train"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    found = []
    for stem in stems:
        path = _locate(folders, stem)
        if path is None and download:
            gz = f"{stem}.gz"
            path = ensure_downloaded(base_url + gz, folders[0] / gz, files[gz])
        if path is None:
            hint = (
                " (or on Debian: apt-get install dataset-fashion-mnist)"
                if name == "fashion_mnist"
                else ""
            )
            raise missing_file_error(folders[0] / f"{stem}.gz", name, base_url + f"{stem}.gz", hint)
        found.append(path)
    images, labels = read_idx(found[0]), read_idx(found[1])
    _check_idx_contents(found, images, labels)
    norm = resolve_normalization(name if normalization == "default" else normalization)
    ds = ArrayDataset(
        torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)[:, None]),
        torch.from_numpy(labels.astype(np.int64)),
        classes,
        norm,
        name=name,
        split=split,
        augmentation=augmentation or Augmentation(2, name == "fashion_mnist"),
    )
    return ds if split == "test" else carve_split(ds, split, val_size, seed)


for _name in ("mnist", "fashion_mnist"):
    DATASETS.register(_name)(partial(load_mnist, _name))
