"""The papers' train/validation split, reproducible without touching NumPy's global state."""

from __future__ import annotations

import numpy as np

from .._validation import check_int

__all__ = ["paper_split_indices", "resolve_val_size"]


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
