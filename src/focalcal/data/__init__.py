"""Datasets in their official formats, the papers' splits, batch transforms and OOD/shift sets.

``get_dataset(name, root=None, split="train"|"val"|"test", download=False, **options)`` returns an
:class:`ArrayDataset` held in memory (uint8 images (N, C, H, W) or float32 features (N, F)).
``make_batch_transform(dataset, train)`` gives the on-device augmentation + normalisation, and
:class:`InMemoryLoader` iterates batches.

Example:
    >>> import torch
    >>> from focalcal.data import ArrayDataset, InMemoryLoader, make_batch_transform
    >>> ds = ArrayDataset(torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8),
    ...                   torch.tensor([0, 1, 2, 0, 1, 2]), ["a", "b", "c"],
    ...                   normalization=((0.5,) * 3, (0.25,) * 3))
    >>> x, y = next(iter(InMemoryLoader(ds, batch_size=4, shuffle=True)))
    >>> x.dtype, tuple(x.shape), y.dtype
    (torch.float32, (4, 3, 8, 8), torch.int64)
"""

from __future__ import annotations

from . import cifar as _cifar  # noqa: F401  (registers the readers)
from . import imagefolder as _imagefolder  # noqa: F401
from . import mnist as _mnist  # noqa: F401
from . import npz as _npz  # noqa: F401
from . import svhn as _svhn  # noqa: F401
from . import tiny_imagenet as _tiny_imagenet  # noqa: F401
from .base import (
    DATASETS,
    NORMALIZATIONS,
    ArrayDataset,
    Augmentation,
    Normalization,
    carve_split,
    channel_statistics,
    get_dataset,
    resolve_normalization,
)
from .corruptions import CORRUPTIONS, corrupt, corrupt_dataset
from .io import ChecksumError, extract_archive, md5sum
from .ood import CIFAR_C_CORRUPTIONS, get_ood_dataset, resize_images
from .splits import paper_split_indices, stratified_subset_indices
from .transforms import BatchTransform, InMemoryLoader, make_batch_transform

__all__ = [
    "CIFAR_C_CORRUPTIONS",
    "CORRUPTIONS",
    "DATASETS",
    "NORMALIZATIONS",
    "ArrayDataset",
    "Augmentation",
    "BatchTransform",
    "ChecksumError",
    "InMemoryLoader",
    "Normalization",
    "carve_split",
    "channel_statistics",
    "corrupt",
    "corrupt_dataset",
    "extract_archive",
    "get_dataset",
    "get_ood_dataset",
    "make_batch_transform",
    "md5sum",
    "paper_split_indices",
    "resize_images",
    "resolve_normalization",
    "stratified_subset_indices",
]
