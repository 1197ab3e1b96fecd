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

from . import imagefolder as _imagefolder  # noqa: F401  (registers "imagefolder")
from . import npz as _npz  # noqa: F401  (registers "npz")
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
from .splits import paper_split_indices
from .transforms import BatchTransform, InMemoryLoader, make_batch_transform

__all__ = [
    "DATASETS",
    "NORMALIZATIONS",
    "ArrayDataset",
    "Augmentation",
    "BatchTransform",
    "InMemoryLoader",
    "Normalization",
    "carve_split",
    "channel_statistics",
    "get_dataset",
    "make_batch_transform",
    "paper_split_indices",
    "resolve_normalization",
]
