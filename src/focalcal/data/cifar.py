"""CIFAR-10 / CIFAR-100 in their official python-pickle and binary layouts."""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path
from typing import Any

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
from .io import ensure_downloaded, extract_archive, missing_file_error

__all__ = ["CIFAR_ARCHIVES", "load_cifar"]

#: Official archives: (url, md5, folder inside the archive).
CIFAR_ARCHIVES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("cifar10", "python"): (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        "cifar-10-batches-py",
    ),
    ("cifar10", "binary"): (
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "c32a1d4ab5d03f1284b67883e8d87530",
        "cifar-10-batches-bin",
    ),
    ("cifar100", "python"): (
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        "cifar-100-python",
    ),
    ("cifar100", "binary"): (
        "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        "03b5dce01913d631647c71ecec9e9cb8",
        "cifar-100-binary",
    ),
}

_PY_FILES = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta"),
    "cifar100": (["train"], ["test"], "meta"),
}
_BIN_FILES = {
    "cifar10": ([f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"]),
    "cifar100": (["train.bin"], ["test.bin"]),
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds the plain containers and NumPy arrays of the CIFAR batches."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes this way
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = _SafeUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(
            f"{path}: not a valid CIFAR python batch ({err}); the file may be corrupt — "
            f"delete it and download again"
        ) from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(raw).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _names(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _read_python(
    folder: Path, name: str, files: list[str], label_key: str, url: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    xs, ys = [], []
    for f in files:
        path = folder / f
        if not path.is_file():
            raise missing_file_error(path, name, url)
        batch = _unpickle(path)
        if "data" not in batch or label_key not in batch:
            raise ValueError(f"{path}: missing 'data' or {label_key!r}; found {sorted(batch)}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{path}: 'data' must be (N, 3072) uint8, got shape {data.shape}")
        labels = np.asarray(batch[label_key], dtype=np.int64)
        if len(labels) != len(data):
            raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    meta_file = folder / _PY_FILES[name][2]
    if not meta_file.is_file():
        raise missing_file_error(meta_file, name, url)
    meta = _unpickle(meta_file)
    names_key = "label_names" if name == "cifar10" else f"{label_key[:-1]}_names"
    return np.concatenate(xs), np.concatenate(ys), _names(meta[names_key])


def _read_binary(
    folder: Path, name: str, files: list[str], label_type: str, url: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    n_label_bytes = 1 if name == "cifar10" else 2
    record = n_label_bytes + 3072
    xs, ys = [], []
    for f in files:
        path = folder / f
        if not path.is_file():
            raise missing_file_error(path, name, url)
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise ValueError(
                f"{path}: size {raw.size} bytes is not a multiple of the {record}-byte CIFAR "
                f"record; the file is truncated or corrupt — delete it and download again"
            )
        raw = raw.reshape(-1, record)
        label_col = 0 if name == "cifar10" or label_type == "coarse" else 1
        ys.append(raw[:, label_col].astype(np.int64))
        xs.append(raw[:, n_label_bytes:].reshape(-1, 3, 32, 32))
    meta_name = "batches.meta.txt" if name == "cifar10" else f"{label_type}_label_names.txt"
    meta_file = folder / meta_name
    if not meta_file.is_file():
        raise missing_file_error(meta_file, name, url)
    classes = [ln.strip() for ln in meta_file.read_text().splitlines() if ln.strip()]
    return np.concatenate(xs), np.concatenate(ys), classes


def _find_folder(root: Path, name: str, fmt: str) -> tuple[Path, str] | None:
    formats = ("python", "binary") if fmt == "auto" else (fmt,)
    for f in formats:
        sub = CIFAR_ARCHIVES[(name, f)][2]
        for candidate in (root / sub, root):
            marker = (_PY_FILES if f == "python" else _BIN_FILES)[name][1][0]
            if (candidate / marker).is_file():
                return candidate, f
    return None


def load_cifar(
    name: str,
    root: Path | None,
    split: str,
    download: bool,
    *,
    format: str = "auto",
    label_type: str = "fine",
    val_size: int | float = 0.1,
    seed: int = 1,
    normalization: Normalization | str | None = "default",
    augmentation: Augmentation | None = None,
) -> ArrayDataset:
    """Read CIFAR-10 or CIFAR-100 (see :func:`focalcal.data.get_dataset`).

    ``root`` holds the extracted official folder (``cifar-10-batches-py``, ``cifar-10-batches-bin``,
    ``cifar-100-python`` or ``cifar-100-binary``) or is that folder. ``format="auto"`` prefers the
    python pickles; ``"python"`` / ``"binary"`` force one. Pickles are read with an unpickler that
    only admits NumPy arrays and plain containers. ``split="val"`` = 5,000 images carved from the
    50,000 training images with :func:`paper_split_indices` (``val_size=0.1``, ``seed=1``);
    ``"train"`` = the other 45,000 (``val_size=0`` keeps all 50,000). CIFAR-100 ``label_type``
    ``"fine"`` (100 classes) or ``"coarse"`` (20). Normalisation: the papers' statistics for every
    split (``NORMALIZATIONS[name]``, ``normalization="default"``) unless another is given.
    """
    if format not in ("auto", "python", "binary"):
        raise ValueError(f"format: expected one of ['auto', 'python', 'binary'], got {format!r}")
    if label_type not in ("fine", "coarse"):
        raise ValueError(f"label_type: expected 'fine' or 'coarse', got {label_type!r}")
    root = Path(root) if root is not None else default_root(name)
    found = _find_folder(root, name, format)
    if found is None and download:
        fmt = "python" if format == "auto" else format
        url, md5, _ = CIFAR_ARCHIVES[(name, fmt)]
        archive = ensure_downloaded(url, root / url.rsplit("/", 1)[1], md5)
        extract_archive(archive, root)
        found = _find_folder(root, name, fmt)
    if found is None:
        fmt = "python" if format == "auto" else format
        url, _, sub = CIFAR_ARCHIVES[(name, fmt)]
        raise missing_file_error(root / sub, name, url, " Extract the archive into root.")
    folder, fmt = found
    url = CIFAR_ARCHIVES[(name, fmt)][0]
    train_files, test_files = (_PY_FILES if fmt == "python" else _BIN_FILES)[name][:2]
    files = test_files if split == "test" else train_files
    if fmt == "python":
        label_key = "labels" if name == "cifar10" else f"{label_type}_labels"
        x, y, classes = _read_python(folder, name, files, label_key, url)
    else:
        x, y, classes = _read_binary(folder, name, files, label_type, url)
    norm = resolve_normalization(name if normalization == "default" else normalization)
    ds = ArrayDataset(
        torch.from_numpy(np.ascontiguousarray(x)),
        torch.from_numpy(y),
        classes,
        norm,
        name=name,
        split=split,
        augmentation=augmentation or Augmentation(4, True),
    )
    return ds if split == "test" else carve_split(ds, split, val_size, seed)


for _name in ("cifar10", "cifar100"):
    DATASETS.register(_name)(partial(load_cifar, _name))
