"""The in-memory dataset type, the dataset registry and ``get_dataset``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._registry import Registry
from .._validation import _describe, check_choice, check_kwargs
from .splits import paper_split_indices, resolve_val_size

__all__ = [
    "DATASETS",
    "NORMALIZATIONS",
    "ArrayDataset",
    "Augmentation",
    "Normalization",
    "carve_split",
    "default_root",
    "get_dataset",
    "resolve_normalization",
]

Normalization = tuple[tuple[float, ...], tuple[float, ...]]

#: Per-channel (mean, std) used by the papers' code and the usual values for the other sets.
#: ``cifar100`` is the official code's training/validation normalisation, which reuses the
#: CIFAR-10 statistics; focalcal applies it to the CIFAR-100 test set too (the official code uses
#: ImageNet statistics there, a bug: REFERENCE §8.9).
NORMALIZATIONS: dict[str, Normalization] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tiny_imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation of a dataset: random crop with ``crop_padding`` zero pixels on each
    side (0 = none) and random horizontal flip (``hflip``)."""

    crop_padding: int = 4
    hflip: bool = True


@dataclass
class ArrayDataset(torch.utils.data.Dataset):
    """A whole dataset split held in memory as two tensors.

    Attributes:
        inputs: uint8 (N, C, H, W) images or float32 (N, F) feature vectors.
        targets: int64 (N,) labels in ``[0, num_classes)``.
        classes: class names; ``num_classes = len(classes)``.
        normalization: per-channel ``(mean, std)`` on the [0, 1] scale (or per-feature for
            feature vectors), the same for every split of a dataset; ``None`` = no normalisation.
        name, split: where it came from.
        augmentation: the training augmentation that suits this data
            (see :func:`focalcal.data.make_batch_transform`).
        source_indices: int64 (N,) positions of the samples in the source files (e.g. official
            CIFAR order), so splits can be audited.

    Indexing gives ``(inputs[i], targets[i])`` (raw uint8 images); for training, iterate with
    :class:`focalcal.data.InMemoryLoader`, which moves the tensor to the device once and applies
    the batch transform there.

    Example:
        >>> import torch
        >>> from focalcal.data import ArrayDataset
        >>> ds = ArrayDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]),
        ...                   classes=["cat", "dog"])
        >>> len(ds), ds.num_classes, ds.input_shape, ds.is_image
        (4, 2, (3, 8, 8), True)
    """

    inputs: Tensor
    targets: Tensor
    classes: list[str]
    normalization: Normalization | None = None
    name: str = "dataset"
    split: str = "train"
    augmentation: Augmentation = field(default_factory=Augmentation)
    source_indices: Tensor | None = None

    def __post_init__(self) -> None:
        x, y = self.inputs, self.targets
        if isinstance(x, np.ndarray):
            x = self.inputs = torch.from_numpy(np.ascontiguousarray(x))
        if isinstance(y, np.ndarray):
            y = self.targets = torch.from_numpy(np.ascontiguousarray(y))
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs: expected a tensor, got {_describe(x)}")
        if not isinstance(y, Tensor):
            raise TypeError(f"targets: expected a tensor, got {_describe(y)}")
        if x.ndim == 4:
            if x.dtype != torch.uint8:
                raise TypeError(f"inputs: images must be uint8 (N, C, H, W), got {_describe(x)}")
        elif x.ndim == 2:
            if x.dtype != torch.float32:
                raise TypeError(
                    f"inputs: feature vectors must be float32 (N, F), got {_describe(x)}"
                )
        else:
            raise ValueError(
                f"inputs: expected uint8 images (N, C, H, W) or float32 features (N, F), got {_describe(x)}"
            )
        if y.dtype != torch.int64 or y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"targets: expected int64 of shape ({len(x)},), got {_describe(y)}")
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise ValueError("classes: expected at least one class name, got []")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
            raise ValueError(
                f"targets: expected labels in [0, {len(self.classes)}) for {len(self.classes)} "
                f"classes, got min {int(y.min())}, max {int(y.max())}"
            )
        if self.normalization is not None:
            mean, std = (tuple(float(v) for v in t) for t in self.normalization)
            width = x.shape[1]
            if len(mean) != width or len(std) != width or min(std) <= 0:
                raise ValueError(
                    f"normalization: expected (mean, std) with {width} entries each and std > 0, "
                    f"got {self.normalization!r}"
                )
            self.normalization = (mean, std)
        if self.source_indices is None:
            self.source_indices = torch.arange(len(x))

    # -- basic protocol -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.targets[index]

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) for images, (F,) for feature vectors."""
        return tuple(int(s) for s in self.inputs.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.inputs.ndim == 4

    def class_counts(self) -> Tensor:
        """Samples per class, int64 (num_classes,)."""
        return torch.bincount(self.targets, minlength=self.num_classes)

    def subset(
        self, indices: Sequence[int] | np.ndarray | Tensor, split: str | None = None
    ) -> ArrayDataset:
        """The samples at ``indices`` (same classes, normalisation and augmentation)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        assert self.source_indices is not None
        return replace(
            self,
            inputs=self.inputs[idx],
            targets=self.targets[idx],
            source_indices=self.source_indices[idx],
            split=self.split if split is None else split,
        )

    def with_normalization(self, normalization: Normalization | str | None) -> ArrayDataset:
        """The same data with another normalisation (e.g. an OOD set normalised like the
        in-distribution training set)."""
        return replace(self, normalization=resolve_normalization(normalization, self))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(len(self)):
            yield self[i]


def channel_statistics(images: Tensor, chunk: int = 4096) -> Normalization:
    """Per-channel mean and std on the [0, 1] scale of uint8 (N, C, H, W) images (float64 sums)."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += block.sum(dim=(0, 2, 3))
        total_sq += block.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / max(count, 1)
    std = (total_sq / max(count, 1) - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def resolve_normalization(
    normalization: Normalization | str | None, train_like: ArrayDataset | Tensor | None = None
) -> Normalization | None:
    """``None``, an explicit ``(mean, std)``, a name in :data:`NORMALIZATIONS`, or ``"auto"``
    (per-channel statistics of ``train_like``'s uint8 images; ``None`` for feature vectors)."""
    if normalization is None:
        return None
    if isinstance(normalization, str):
        key = normalization.strip().lower().replace("-", "_")
        if key == "auto":
            data = train_like.inputs if isinstance(train_like, ArrayDataset) else train_like
            if data is None or data.ndim != 4:
                return None
            return channel_statistics(data)
        check_choice(key, "normalization", ["auto", *NORMALIZATIONS])
        return NORMALIZATIONS[key]
    try:
        mean, std = normalization
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"normalization: expected None, 'auto', one of {sorted(NORMALIZATIONS)} or "
            f"(mean, std) sequences, got {normalization!r}"
        ) from err


def carve_split(
    full_train: ArrayDataset, split: str, val_size: int | float, seed: int
) -> ArrayDataset:
    """The papers' train/validation carve of a full training set (:func:`paper_split_indices`).

    ``split="train"`` gives the training part, ``"val"`` the validation part, both in file order.
    ``val_size=0`` keeps the whole training set (and ``"val"`` is then an error).
    """
    n = len(full_train)
    count = resolve_val_size(val_size, n)
    if count == 0:
        if split == "val":
            raise ValueError(
                f"split='val' needs a validation part, but val_size={val_size!r} gives 0 samples"
            )
        return full_train
    train_idx, val_idx = paper_split_indices(n, count, seed)
    chosen = np.sort(val_idx if split == "val" else train_idx)
    return full_train.subset(chosen, split=split)


def default_root(name: str) -> Path:
    """``$FOCALCAL_DATA/<name>`` or ``~/.cache/focalcal/data/<name>``."""
    base = os.environ.get("FOCALCAL_DATA")
    return (Path(base) if base else Path.home() / ".cache" / "focalcal" / "data") / name


DATASETS: Registry[ArrayDataset] = Registry("dataset")


def get_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    download: bool = False,
    **options: Any,
) -> ArrayDataset:
    """Load a dataset split into memory (unknown names list the valid ones).

    Args:
        name: ``cifar10``, ``cifar100``, ``svhn``, ``tiny_imagenet``, ``mnist``, ``fashion_mnist``,
            ``imagefolder``, ``npz``, ``cifar10_c``, ``cifar100_c`` (see the README table).
        root: the folder (or the ``.npz`` file) holding the official files;
            ``None`` = ``$FOCALCAL_DATA/<name>`` or ``~/.cache/focalcal/data/<name>``.
        split: ``"train"``, ``"val"`` (carved from train as the papers do, unless the data ships
            a validation split) or ``"test"``.
        download: fetch the official archive, check its MD5, extract it safely.
        **options: per-dataset options, e.g. ``val_size=5000, seed=1, normalization="auto"``.

    Example:
        >>> from focalcal.data import get_dataset
        >>> get_dataset("mnistt")
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset 'mnistt'; expected one of: cifar10, cifar100, cifar100_c, cifar10_c, fashion_mnist, imagefolder, mnist, npz, svhn, tiny_imagenet
    """
    factory = DATASETS.factory(name)
    check_choice(split, "split", SPLITS)
    if not isinstance(download, bool):
        raise TypeError(f"download: expected a bool, got {download!r}")
    check_kwargs(factory, options, name, skip=("name", "root", "split", "download"))
    return factory(
        root=None if root is None else Path(root).expanduser(),
        split=split,
        download=download,
        **options,
    )
