"""SVHN (cropped digits) from the official ``{train,test,extra}_32x32.mat`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._optional import require
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

__all__ = ["SVHN_FILES", "load_svhn"]

_BASE = "http://ufldl.stanford.edu/housenumbers/"
#: file → md5 of the official .mat
SVHN_FILES = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
}


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    sio = require("scipy.io", "data")
    try:
        mat = sio.loadmat(path)
    except Exception as err:  # scipy's MatReadError and friends: all mean "not a valid .mat"
        raise ValueError(
            f"{path}: not a readable SVHN .mat file ({err}); it may be corrupt"
        ) from err
    if "X" not in mat or "y" not in mat:
        raise ValueError(
            f"{path}: expected arrays 'X' and 'y', found {sorted(k for k in mat if not k.startswith('__'))}"
        )
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise ValueError(
            f"{path}: 'X' must be (32, 32, 3, N) with N = len(y), got {x.shape} and {len(y)} labels"
        )
    y = y.astype(np.int64)
    y[y == 10] = 0  # the official files label the digit 0 as 10
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{path}: labels must be 1..10, got range [{y.min()}, {y.max()}]")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8), y


@DATASETS.register("svhn")
def load_svhn(
    root: Path | None,
    split: str,
    download: bool,
    *,
    include_extra: bool = False,
    val_size: int | float = 0.1,
    seed: int = 1,
    normalization: Normalization | str | None = "default",
    augmentation: Augmentation | None = None,
) -> ArrayDataset:
    """Read SVHN ``train_32x32.mat`` / ``test_32x32.mat`` (+ ``extra_32x32.mat`` with
    ``include_extra``) with scipy; labels 10 → 0. ``download=True`` fetches the official files and
    checks their MD5. The test split is the usual OOD set for CIFAR models (normalise it like the
    in-distribution data: ``ds.with_normalization("cifar10")``). ``split="val"`` is a 10 % draw from
    train (``val_size``, ``seed``; ``val_size=0`` keeps all of train). Augmentation: 4-pixel crop,
    no flip.
    """
    folder = Path(root) if root is not None else default_root("svhn")
    names = ["test_32x32.mat"] if split == "test" else ["train_32x32.mat"]
    if split != "test" and include_extra:
        names.append("extra_32x32.mat")
    xs, ys = [], []
    for fname in names:
        path = folder / fname
        if not path.is_file() and download:
            ensure_downloaded(_BASE + fname, path, SVHN_FILES[fname])
        if not path.is_file():
            raise missing_file_error(path, "svhn", _BASE + fname)
        x, y = _read_mat(path)
        xs.append(x)
        ys.append(y)
    norm = resolve_normalization("svhn" if normalization == "default" else normalization)
    ds = ArrayDataset(
        torch.from_numpy(np.concatenate(xs)),
        torch.from_numpy(np.concatenate(ys)),
        [str(i) for i in range(10)],
        norm,
        name="svhn",
        split=split,
        augmentation=augmentation or Augmentation(4, False),
    )
    return ds if split == "test" else carve_split(ds, split, val_size, seed)
