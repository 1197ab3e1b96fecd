"""Keras-style ``.npz`` arrays: ``x_train, y_train, x_test, y_test[, x_val, y_val, class_names]``."""

from __future__ import annotations

import zipfile
import zlib
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

__all__ = ["load_npz"]


_MEMBER_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _read(data: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """``data[key]``, with a truncated or corrupt member reported by file and key."""
    try:
        return data[key]
    except _MEMBER_ERRORS as err:
        raise ValueError(
            f"{path}: array {key!r} cannot be read ({err}); the file is truncated or corrupt, "
            f"re-create it with numpy.savez"
        ) from None


def _sample_shape(data: np.lib.npyio.NpzFile, key: str, path: Path) -> tuple[int, ...]:
    """The shape of one sample of ``key``, read from the array header alone (no data)."""
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    try:
        with data.zip.open(f"{key}.npy") as fh:
            reader = readers.get(np.lib.format.read_magic(fh))
            shape = reader(fh)[0] if reader else data[key].shape
    except _MEMBER_ERRORS as err:
        raise ValueError(
            f"{path}: array {key!r} cannot be read ({err}); the file is truncated or corrupt, "
            f"re-create it with numpy.savez"
        ) from None
    return tuple(shape[1:])


def _check_sample_shapes(data: np.lib.npyio.NpzFile, path: Path, keys: list[str]) -> None:
    """Every split's samples have the training samples' shape (else evaluation fails at the end)."""
    shapes = {key: _sample_shape(data, key, path) for key in keys}
    for key in keys[1:]:
        if shapes[key] != shapes[keys[0]]:
            raise ValueError(
                f"{path}: {key} samples have shape {shapes[key]} but {keys[0]} samples have "
                f"{shapes[keys[0]]}; every split must have the same feature width / image shape"
            )


def _as_inputs(x: np.ndarray, key: str, path: Path, channels_last: bool | None) -> torch.Tensor:
    """Images → uint8 (N, C, H, W); feature vectors → float32 (N, F)."""
    if x.ndim == 2:
        if not np.issubdtype(x.dtype, np.number):
            raise TypeError(f"{path}: {key} must be numeric, got dtype {x.dtype}")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise ValueError(f"{path}: {key} holds NaN/inf feature values")
        return torch.from_numpy(np.ascontiguousarray(x))
    if x.ndim == 3:  # (N, H, W) grayscale
        x = x[:, None]
    elif x.ndim == 4:
        if channels_last is None:
            channels_last = x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)
        if channels_last:
            x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(
            f"{path}: {key} must be (N, F) features or (N, H, W[, C]) images, got shape {x.shape}"
        )
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and x.size and 0.0 <= x.min() and x.max() <= 1.0:
            x = np.round(x * 255.0).astype(np.uint8)
        elif np.issubdtype(x.dtype, np.integer) and x.size and 0 <= x.min() and x.max() <= 255:
            x = x.astype(np.uint8)
        else:
            raise ValueError(
                f"{path}: {key} images must be uint8, integers in [0, 255] or floats in [0, 1]; "
                f"got dtype {x.dtype} with range [{x.min() if x.size else '-'}, {x.max() if x.size else '-'}]"
            )
    return torch.from_numpy(np.ascontiguousarray(x))


def _as_targets(y: np.ndarray, key: str, path: Path, n: int) -> torch.Tensor:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{path}: {key} must be ({n},) integer labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{path}: {key} must hold integer labels, got dtype {y.dtype}")
    return torch.from_numpy(y.astype(np.int64))


def _checked_path(root: Path | None, download: bool) -> Path:
    """The npz file named by ``root`` (there is nothing to download)."""
    if download:
        raise ValueError(
            "download: npz data are the user's own files; there is nothing to download"
        )
    if root is None:
        raise ValueError("root: the npz dataset needs root=<path to the .npz file>, got None")
    path = Path(root)
    if not path.is_file():
        raise FileNotFoundError(
            f"npz: file not found: {path}. Expected a Keras-style .npz with x_train, y_train, "
            f"x_test, y_test (np.savez)."
        )
    return path


def _layout(data: np.lib.npyio.NpzFile, path: Path) -> tuple[bool, list[str]]:
    """Whether the file has a validation split, and the class names (given, or ``"0" … "K-1"``
    with K = 1 + the largest label of any split); checks the keys and the sample shapes."""
    keys = set(data.files)
    missing = {"x_train", "y_train", "x_test", "y_test"} - keys
    if missing:
        raise ValueError(f"{path}: missing arrays {sorted(missing)}; found {sorted(keys)}")
    has_val = {"x_val", "y_val"} <= keys
    _check_sample_shapes(data, path, ["x_train", "x_test"] + (["x_val"] if has_val else []))
    if "class_names" in keys:
        return has_val, [str(c) for c in _read(data, "class_names", path).tolist()]
    labels = [_read(data, k, path) for k in ["y_train", "y_test"] + (["y_val"] if has_val else [])]
    top = max((int(v.max()) for v in labels if v.size), default=0)
    return has_val, [str(i) for i in range(top + 1)]


@DATASETS.register("npz")
def load_npz(
    root: Path | None,
    split: str = "train",
    download: bool = False,
    *,
    val_size: int | float = 0.1,
    seed: int = 1,
    normalization: Normalization | str | None = "auto",
    channels_last: bool | None = None,
    augmentation: Augmentation | None = None,
    name: str | None = None,
) -> ArrayDataset:
    """Read a Keras-style ``.npz`` file (``root`` is the file).

    Keys ``x_train, y_train, x_test, y_test`` are required; ``x_val, y_val`` give the validation
    split (otherwise ``split="val"`` is carved from train with the papers' recipe,
    :func:`paper_split_indices`, ``val_size`` 10 % and ``seed`` 1); ``class_names`` names the
    classes (otherwise ``"0" … "K-1"``, K = 1 + the largest label in any split).

    ``x_*`` are feature vectors (N, F) (any numeric dtype → float32) or images (N, H, W),
    (N, H, W, C) or (N, C, H, W) (uint8, or floats in [0, 1] → uint8; the channel axis is guessed
    unless ``channels_last`` says). ``normalization="auto"``: per-channel statistics of the
    training images; ``None`` for feature vectors.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from focalcal.data import get_dataset
        >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
        >>> rng = np.random.default_rng(0)
        >>> np.savez(path, x_train=rng.normal(size=(20, 5)).astype("f4"), y_train=np.arange(20) % 2,
        ...          x_test=np.zeros((4, 5), "f4"), y_test=np.array([0, 1, 1, 0]),
        ...          class_names=np.array(["neg", "pos"]))
        >>> ds = get_dataset("npz", root=path, split="val")
        >>> len(ds), ds.input_shape, ds.classes
        (2, (5,), ['neg', 'pos'])
    """
    path = _checked_path(root, download)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path}: not a readable .npz file ({err}); re-create it with numpy.savez"
        ) from None
    with archive as data:
        has_val, classes = _layout(data, path)
        source = "test" if split == "test" else ("val" if split == "val" and has_val else "train")
        x = _as_inputs(_read(data, f"x_{source}", path), f"x_{source}", path, channels_last)
        y = _as_targets(_read(data, f"y_{source}", path), f"y_{source}", path, len(x))
        train_x = x if source == "train" else None
        if isinstance(normalization, str) and normalization == "auto" and source != "train":
            train_x = _as_inputs(_read(data, "x_train", path), "x_train", path, channels_last)
    norm = resolve_normalization(normalization, train_x)
    if y.numel() and int(y.max()) >= len(classes):
        raise ValueError(
            f"{path}: y_{source} has label {int(y.max())} but only {len(classes)} class_names"
        )
    ds = ArrayDataset(
        x,
        y,
        classes,
        norm,
        name=name or path.stem,
        split=split,
        augmentation=augmentation or Augmentation(),
    )
    if split in ("train", "val") and not has_val:
        ds = carve_split(ds, split, val_size, seed)
    return ds
