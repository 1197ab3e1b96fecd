"""The papers' 45k/5k split, recomputed here with the official recipe itself."""

# ruff: noqa: NPY002  (the official recipe uses the legacy global NumPy RNG on purpose)

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal.data import (
    ArrayDataset,
    carve_split,
    paper_split_indices,
    stratified_subset_indices,
)


def official_recipe(n: int, valid_size: float, seed: int) -> tuple[list[int], list[int]]:
    """FC Data/cifar10.py get_train_valid_loader, verbatim logic (global NumPy RNG, a list)."""
    indices = list(range(n))
    split = int(np.floor(valid_size * n))
    np.random.seed(seed)
    np.random.shuffle(indices)
    return indices[split:], indices[:split]


def test_same_5000_validation_indices_as_official_code():
    state = np.random.get_state()
    try:
        train_ref, val_ref = official_recipe(50000, 0.1, 1)
    finally:
        np.random.set_state(state)
    before = np.random.get_state()[1].copy()
    train_idx, val_idx = paper_split_indices(50000, 5000, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)  # global RNG untouched
    assert val_idx.tolist() == val_ref
    assert train_idx.tolist() == train_ref
    assert train_idx.dtype == np.int64
    # a fraction gives the same as the count, as in the official int(floor(0.1 * 50000))
    assert np.array_equal(paper_split_indices(50000, 0.1, 1)[1], val_idx)


@pytest.mark.parametrize(("n", "val", "seed"), [(100, 0.25, 0), (1000, 7, 3), (11314, 0.1, 1)])
def test_other_sizes_and_seeds(n, val, seed):
    state = np.random.get_state()
    try:
        frac = val if isinstance(val, float) else val / n
        train_ref, val_ref = official_recipe(n, frac, seed)
    finally:
        np.random.set_state(state)
    train_idx, val_idx = paper_split_indices(n, val, seed)
    assert val_idx.tolist() == val_ref and train_idx.tolist() == train_ref
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(n))


def test_bad_split_arguments():
    with pytest.raises(ValueError, match="val_size"):
        paper_split_indices(10, 10)
    with pytest.raises(ValueError, match="val_size"):
        paper_split_indices(10, 1.5)
    with pytest.raises(TypeError, match="val_size"):
        paper_split_indices(10, "5")
    with pytest.raises(ValueError, match="n"):
        paper_split_indices(0, 0)


def test_carve_split_keeps_file_order_and_sources():
    x = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 3, 2, 2).contiguous()
    ds = ArrayDataset(x, torch.arange(20) % 2, ["a", "b"])
    tr, va = carve_split(ds, "train", 5, 1), carve_split(ds, "val", 5, 1)
    _, val_idx = paper_split_indices(20, 5, 1)
    assert va.source_indices.tolist() == sorted(val_idx.tolist())
    assert va.inputs[:, 0, 0, 0].tolist() == sorted(val_idx.tolist())
    assert set(tr.source_indices.tolist()) | set(va.source_indices.tolist()) == set(range(20))
    assert (tr.split, va.split) == ("train", "val")
    assert carve_split(ds, "train", 0, 1) is ds
    with pytest.raises(ValueError, match="val"):
        carve_split(ds, "val", 0, 1)


@pytest.mark.parametrize("size", [1, 7, 10, 99, 100])
def test_stratified_subset_keeps_class_shares(size):
    labels = np.repeat([0, 1, 2, 3], [50, 30, 15, 5])
    rng = np.random.default_rng(3)
    labels = labels[rng.permutation(len(labels))]
    idx = stratified_subset_indices(labels, size, seed=4)
    assert len(idx) == size and len(np.unique(idx)) == size
    assert np.all(np.diff(idx) > 0) and idx.dtype == np.int64
    counts = np.bincount(labels[idx], minlength=4)
    exact = np.bincount(labels, minlength=4) * size / len(labels)
    # Hamilton's apportionment: every class within one sample of its exact share
    assert np.all(np.abs(counts - exact) < 1.0), (counts, exact)
    np.testing.assert_array_equal(idx, stratified_subset_indices(labels, size, seed=4))
    if 1 < size < 100:
        assert not np.array_equal(idx, stratified_subset_indices(labels, size, seed=5))


def test_stratified_subset_bad_arguments():
    labels = np.array([0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"size: expected at most the 4 available samples, got 5"):
        stratified_subset_indices(labels, 5)
    with pytest.raises(ValueError, match="size"):
        stratified_subset_indices(labels, 0)
    with pytest.raises(TypeError, match="targets: expected a 1-D integer array"):
        stratified_subset_indices(labels.astype(float), 2)
