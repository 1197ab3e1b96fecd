"""The papers' train/validation split, reproducible without touching NumPy's global state."""

from __future__ import annotations

import numpy as np

from .._validation import check_int

__all__ = ["paper_split_indices", "resolve_val_size", "stratified_subset_indices"]


def resolve_val_size(val_size: int | float, n: int) -> int:
    """Validation count from an int count or a float fraction (``floor(fraction · n)``, as FC)."""
    if isinstance(val_size, bool) or not isinstance(
        val_size, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"val_size: expected an int count or a float fraction, got {val_size!r}")
    if isinstance(val_size, (float, np.floating)):
        if not 0.0 <= val_size < 1.0:
            raise ValueError(f"val_size: expected a fraction in [0, 1), got {val_size}")
        count = int(np.floor(val_size * n))
    else:
        count = int(val_size)
    if not 0 <= count < n:
        raise ValueError(
            f"val_size: expected between 0 and {n - 1} validation samples out of {n}, got {count}"
        )
    return count


def paper_split_indices(
    n: int = 50000, val_size: int | float = 5000, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation indices exactly as the focal-loss and dual-focal-loss code draws them.

    The official recipe (``Data/cifar10.py``, ``valid_size=0.1``, ``random_seed=1``) is::

        indices = list(range(n)); np.random.seed(seed); np.random.shuffle(indices)
        valid_idx, train_idx = indices[:val_size], indices[val_size:]

    This function gives the same indices with a private ``np.random.RandomState(seed)`` (the same
    Mersenne-Twister stream as the legacy global seed), so NumPy's global state is left alone.

    Args:
        n: size of the official training set (50,000 for CIFAR).
        val_size: validation count (int) or fraction of ``n`` (float, floored like the official
            ``int(np.floor(valid_size * num_train))``).
        seed: the official seed is 1.

    Returns:
        ``(train_idx, val_idx)``, int64 arrays in the official (shuffled) order.

    Example:
        >>> from focalcal.data import paper_split_indices
        >>> train_idx, val_idx = paper_split_indices(50000, 5000, seed=1)
        >>> len(train_idx), len(val_idx), len(set(train_idx) | set(val_idx))
        (45000, 5000, 50000)
    """
    n = check_int(n, "n", min_value=1)
    seed = check_int(seed, "seed", min_value=0)
    count = resolve_val_size(val_size, n)
    indices = np.arange(n, dtype=np.int64)
    np.random.RandomState(seed).shuffle(indices)
    return indices[count:].copy(), indices[:count].copy()


def stratified_subset_indices(
    targets: np.ndarray, size: int, seed: int = 0, *, name: str = "size"
) -> np.ndarray:
    """Indices of a class-stratified random subset of ``size`` samples, sorted.

    Every class keeps its share of the set: class ``k`` with ``n_k`` of ``n`` samples gets
    ``floor(size · n_k / n)`` samples plus one for the classes with the largest remainders
    (Hamilton's method), so the counts sum to ``size`` and each differs from the exact share by
    less than one. The samples of a class are drawn with a private
    ``np.random.RandomState(seed)``; the same ``(targets, size, seed)`` always give the same
    subset, whatever the training seed, so runs that differ only in their loss or seed see the
    same images.

    Args:
        targets: integer labels, shape (n,).
        size: number of samples to keep, ``1 <= size <= n``.
        seed: seed of the draw (default 0).
        name: how errors about ``size`` name it (e.g. ``"train_size"``).

    Returns:
        int64 indices into ``targets``, increasing.

    Example:
        >>> import numpy as np
        >>> from focalcal.data import stratified_subset_indices
        >>> labels = np.repeat([0, 1, 2], [50, 30, 20])
        >>> idx = stratified_subset_indices(labels, 10)
        >>> np.bincount(labels[idx]).tolist()
        [5, 3, 2]
    """
    targets = np.asarray(targets)
    if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(
            f"targets: expected a 1-D integer array, got {targets.dtype} shape {targets.shape}"
        )
    n = len(targets)
    size = check_int(size, name, min_value=1)
    if size > n:
        raise ValueError(f"{name}: expected at most the {n} available samples, got {size}")
    seed = check_int(seed, "seed", min_value=0)
    classes, counts = np.unique(targets, return_counts=True)
    exact = counts * (size / n)
    take = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - take), kind="stable")
    take[remainder_order[: size - int(take.sum())]] += 1
    rng = np.random.RandomState(seed)
    chosen = [
        rng.permutation(np.flatnonzero(targets == cls))[:k]
        for cls, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
