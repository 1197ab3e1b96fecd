"""Batch augmentation + normalisation on the training device, and an in-memory batch loader.

The whole split is one uint8 tensor; a batch is cropped with one gather from a strided view of
the padded batch, flipped with one select and normalised with one fused multiply-add, on whatever
device the batch lives on. No per-sample Python work and no PIL in the training loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import _describe, check_int
from .base import ArrayDataset, Augmentation, Normalization, resolve_normalization

__all__ = ["BatchTransform", "InMemoryLoader", "make_batch_transform"]


class BatchTransform:
    """uint8 (N, C, H, W) batch → normalised float batch, optionally with random crop + flip.

    .. math::
        y_{n,c,i,j} = \\frac{x_{n,c,\\,i + o^y_n - p,\\; \\tilde{j}} / 255 - \\mu_c}{\\sigma_c},
        \\quad \\tilde{j} = \\begin{cases} W - 1 - j + o^x_n - p & \\text{flip}_n \\\\
        j + o^x_n - p & \\text{otherwise} \\end{cases}

    with offsets :math:`o_n \\sim U\\{0, …, 2p\\}` and zero (black) pixels outside the image —
    torchvision's ``RandomCrop(H, padding=p)`` + ``RandomHorizontalFlip()`` + ``Normalize``, per
    sample, done for the whole batch at once. Float feature batches (N, F) are only normalised
    (when ``normalization`` is given) and cast.

    Args:
        normalization: ``(mean, std)`` per channel on the [0, 1] scale, or ``None``.
        crop_padding: ``p``; 0 disables the random crop.
        hflip: random horizontal flip with probability 1/2.
        dtype: output dtype (float32, or bfloat16/float16 for mixed precision).
        seed: seeds a private CPU generator for the random offsets/flips (reproducible runs);
            ``None`` uses torch's global RNG.

    Example:
        >>> import torch
        >>> from focalcal.data import BatchTransform
        >>> t = BatchTransform(((0.5,), (0.5,)), crop_padding=2, hflip=True, seed=0)
        >>> x = torch.randint(0, 256, (8, 1, 6, 6), dtype=torch.uint8)
        >>> y = t(x)
        >>> y.shape, y.dtype, bool(y.abs().max() <= 1 + 1e-6)
        (torch.Size([8, 1, 6, 6]), torch.float32, True)
    """

    def __init__(
        self,
        normalization: Normalization | None,
        crop_padding: int = 0,
        hflip: bool = False,
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
    ) -> None:
        self.normalization = normalization
        self.crop_padding = check_int(crop_padding, "crop_padding", min_value=0)
        self.hflip = bool(hflip)
        self.dtype = dtype
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)
        self._affine: dict[tuple[torch.device, int], tuple[Tensor, Tensor]] = {}

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.hflip

    def __repr__(self) -> str:
        return (
            f"BatchTransform(normalization={self.normalization}, crop_padding={self.crop_padding}, "
            f"hflip={self.hflip}, dtype={self.dtype})"
        )

    def _scale_shift(self, x: Tensor, scale_255: bool) -> tuple[Tensor, Tensor]:
        """Per-channel ``scale``, ``shift`` so that ``y = x · scale + shift``, cached per device."""
        key = (x.device, x.shape[1])
        if key not in self._affine:
            width = x.shape[1]
            if self.normalization is None:
                mean, std = torch.zeros(width), torch.ones(width)
            else:
                mean = torch.tensor(self.normalization[0], dtype=torch.float64)
                std = torch.tensor(self.normalization[1], dtype=torch.float64)
                if len(mean) != width:
                    raise ValueError(
                        f"batch: expected {len(mean)} channels/features to match the "
                        f"normalization, got shape {tuple(x.shape)}"
                    )
            scale = 1.0 / (std * (255.0 if scale_255 else 1.0))
            shift = -mean / std
            shape = (1, width, 1, 1) if x.ndim == 4 else (1, width)
            self._affine[key] = (
                scale.to(torch.float32).reshape(shape).to(x.device),
                shift.to(torch.float32).reshape(shape).to(x.device),
            )
        return self._affine[key]

    def _crop_flip(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        p = self.crop_padding
        g = self.generator
        if p > 0:
            offsets = torch.randint(0, 2 * p + 1, (2, n), generator=g).to(
                x.device, non_blocking=True
            )
            # windows[n, c, i, j] is the (h, w) crop at offset (i, j) of the padded image (a view)
            windows = F.pad(x, (p, p, p, p)).unfold(2, h, 1).unfold(3, w, 1)
            x = windows[torch.arange(n, device=x.device), :, offsets[0], offsets[1]]
        if self.hflip:
            flip = (torch.rand(n, generator=g) < 0.5).to(x.device, non_blocking=True)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"batch: expected a torch.Tensor, got {_describe(x)}")
        if x.ndim == 4:
            if x.dtype != torch.uint8:
                raise TypeError(f"batch: expected uint8 images (N, C, H, W), got {_describe(x)}")
            if self.augments:
                x = self._crop_flip(x)
            scale, shift = self._scale_shift(x, scale_255=True)
        elif x.ndim == 2:
            if not x.is_floating_point():
                raise TypeError(f"batch: expected float features (N, F), got {_describe(x)}")
            scale, shift = self._scale_shift(x, scale_255=False)
        else:
            raise ValueError(
                f"batch: expected uint8 images (N, C, H, W) or features (N, F), got {_describe(x)}"
            )
        return torch.addcmul(shift, x.to(torch.float32), scale).to(self.dtype)


def make_batch_transform(
    dataset: ArrayDataset,
    train: bool,
    *,
    normalization: Normalization | str | None = "dataset",
    crop_padding: int | None = None,
    hflip: bool | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
) -> BatchTransform:
    """The batch transform for ``dataset``: augmentation when ``train``, its normalisation always.

    Augmentation defaults come from ``dataset.augmentation`` (CIFAR / Tiny-ImageNet: crop with
    4-pixel padding + horizontal flip; digits: no flip); ``crop_padding`` / ``hflip`` override.
    ``normalization="dataset"`` uses ``dataset.normalization`` — the same for every split.

    Example:
        >>> import torch
        >>> from focalcal.data import ArrayDataset, make_batch_transform
        >>> ds = ArrayDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]),
        ...                   ["a", "b"], normalization=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
        >>> make_batch_transform(ds, train=False)(ds.inputs)[0, 0, 0, 0].item()
        -2.0
    """
    if not isinstance(dataset, ArrayDataset):
        raise TypeError(f"dataset: expected a focalcal ArrayDataset, got {_describe(dataset)}")
    norm = dataset.normalization if normalization == "dataset" else normalization
    if isinstance(norm, str):
        norm = resolve_normalization(norm, dataset)
    aug = dataset.augmentation if dataset.is_image else Augmentation(0, False)
    if not train:
        return BatchTransform(norm, 0, False, dtype)
    return BatchTransform(
        norm,
        aug.crop_padding if crop_padding is None else crop_padding,
        aug.hflip if hflip is None else hflip,
        dtype,
        seed,
    )


class InMemoryLoader:
    """Batches of an :class:`ArrayDataset`, transformed on ``device``.

    The uint8 tensor is moved to ``device`` once; each batch is one index-select plus the
    :class:`BatchTransform`. Shuffling is a fresh permutation per epoch from ``seed + epoch``
    (call :meth:`set_epoch`, as with ``DistributedSampler``). With ``world_size > 1`` each rank
    gets a disjoint shard of the permutation, padded by wrap-around to equal length.

    Example:
        >>> import torch
        >>> from focalcal.data import ArrayDataset, InMemoryLoader
        >>> ds = ArrayDataset(torch.zeros(10, 3, 4, 4, dtype=torch.uint8), torch.arange(10) % 2, ["a", "b"])
        >>> loader = InMemoryLoader(ds, batch_size=4, shuffle=True)
        >>> [tuple(x.shape) for x, _ in loader], len(loader)
        ([(4, 3, 4, 4), (4, 3, 4, 4), (2, 3, 4, 4)], 3)
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int = 128,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        transform: BatchTransform | None = None,
        train: bool | None = None,
        device: torch.device | str | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(dataset, ArrayDataset):
            raise TypeError(f"dataset: expected a focalcal ArrayDataset, got {_describe(dataset)}")
        self.dataset = dataset
        self.batch_size = check_int(batch_size, "batch_size", min_value=1)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.world_size = check_int(world_size, "world_size", min_value=1)
        self.rank = check_int(rank, "rank", min_value=0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank: expected 0 <= rank < world_size={world_size}, got {rank}")
        self.seed = seed
        self.epoch = 0
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if transform is None:
            transform = make_batch_transform(dataset, train=shuffle if train is None else train)
        self.transform = transform
        self._inputs: Tensor | None = None
        self._targets: Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> Tensor:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            per_rank = math.ceil(n / self.world_size)
            total = per_rank * self.world_size
            if total > n:
                order = torch.cat([order, order[: total - n]])
            order = order[self.rank : total : self.world_size]
        return order

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.world_size > 1:
            n = math.ceil(n / self.world_size)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self._inputs is None or self._targets is None:
            self._inputs = self.dataset.inputs.to(self.device)
            self._targets = self.dataset.targets.to(self.device)
        order = self._indices().to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.transform(self._inputs[idx]), self._targets[idx]
