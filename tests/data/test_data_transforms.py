"""Batch transform (crop + flip + normalise) and the in-memory loader, against direct loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal.data import (
    ArrayDataset,
    Augmentation,
    BatchTransform,
    InMemoryLoader,
    make_batch_transform,
)

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def _images(n=16, h=8, w=6, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(
        1, 256, (n, c, h, w), dtype=torch.uint8, generator=g
    )  # no zeros: padding is visible


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) / 255.0 - np.array(MEAN)[:, None, None]) / np.array(STD)[
        :, None, None
    ]


def test_eval_transform_is_plain_normalisation():
    x = _images()
    ds = ArrayDataset(x, torch.zeros(len(x), dtype=torch.int64), ["a"], normalization=(MEAN, STD))
    y = make_batch_transform(ds, train=False)(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    np.testing.assert_allclose(
        y.numpy(), np.stack([_normalise(im) for im in x.numpy()]), rtol=1e-5, atol=1e-6
    )


def test_train_transform_each_output_is_a_padded_crop_maybe_flipped():
    x = _images(n=64)
    t = BatchTransform((MEAN, STD), crop_padding=2, hflip=True, seed=3)
    y = t(x).numpy().astype(np.float64)
    p, (n, _, h, w) = 2, x.shape
    padded = np.pad(
        x.numpy(), ((0, 0), (0, 0), (p, p), (p, p))
    )  # zero = black, as RandomCrop(fill=0)
    seen_offsets, flips = set(), 0
    for i in range(n):
        matches = []
        for oy in range(2 * p + 1):
            for ox in range(2 * p + 1):
                crop = padded[i, :, oy : oy + h, ox : ox + w]
                for flip in (False, True):
                    cand = _normalise(crop[:, :, ::-1] if flip else crop)
                    if np.allclose(cand, y[i], atol=1e-5):
                        matches.append((oy, ox, flip))
        assert len(matches) == 1, f"image {i}: {matches}"
        seen_offsets.add(matches[0][:2])
        flips += matches[0][2]
    assert len(seen_offsets) > 12  # offsets spread over the 25 possibilities
    assert 16 < flips < 48  # ~half flipped


def test_transform_seeded_reproducible_and_options():
    x = _images()
    a = BatchTransform((MEAN, STD), 4, True, seed=1)(x)
    b = BatchTransform((MEAN, STD), 4, True, seed=1)(x)
    assert torch.equal(a, b)
    no_aug = BatchTransform((MEAN, STD), 0, False)(x)
    flip_only = BatchTransform((MEAN, STD), 0, True, seed=0)(x)
    for i in range(len(x)):
        assert torch.equal(flip_only[i], no_aug[i]) or torch.equal(flip_only[i], no_aug[i].flip(-1))
    assert (
        BatchTransform(None)(x).max() <= 1.0
        and BatchTransform(None, dtype=torch.bfloat16)(x).dtype == torch.bfloat16
    )


def test_make_batch_transform_uses_dataset_defaults():
    x = _images(c=1)
    digits = ArrayDataset(
        x,
        torch.zeros(len(x), dtype=torch.int64),
        ["a"],
        ((0.5,), (0.5,)),
        augmentation=Augmentation(2, False),
    )
    t = make_batch_transform(digits, train=True)
    assert (t.crop_padding, t.hflip) == (2, False)
    t = make_batch_transform(digits, train=True, crop_padding=0, hflip=True)
    assert (t.crop_padding, t.hflip) == (0, True)
    assert not make_batch_transform(digits, train=False).augments
    assert make_batch_transform(digits, train=False, normalization=None).normalization is None


def test_feature_batches():
    feats = torch.randn(10, 4)
    ds = ArrayDataset(
        feats, torch.zeros(10, dtype=torch.int64), ["a"], normalization=((1.0,) * 4, (2.0,) * 4)
    )
    out = make_batch_transform(ds, train=True)(feats)  # no augmentation for vectors
    torch.testing.assert_close(out, (feats - 1) / 2)
    ds_raw = ArrayDataset(feats, torch.zeros(10, dtype=torch.int64), ["a"])
    torch.testing.assert_close(make_batch_transform(ds_raw, train=True)(feats), feats)


def test_transform_rejects_bad_batches():
    t = BatchTransform((MEAN, STD), 4, True)
    with pytest.raises(TypeError, match="uint8"):
        t(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        t(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        t(torch.zeros(2, 3, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="Tensor"):
        t(np.zeros((2, 3, 8, 8), np.uint8))


def test_loader_epochs_cover_everything_once():
    n = 23
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    ds = ArrayDataset(x, torch.arange(n) % 3, ["a", "b", "c"])
    loader = InMemoryLoader(ds, batch_size=5, shuffle=True, seed=7, train=False)
    orders = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        ids = []
        for xb, yb in loader:
            assert xb.dtype == torch.float32
            got = (xb[:, 0, 0, 0] * 255).round().long()
            assert torch.equal(yb, got % 3)  # labels travel with their images
            ids += got.tolist()
        assert sorted(ids) == list(range(n))
        orders.append(ids)
    assert orders[0] != orders[1] and len(loader) == 5
    assert len(InMemoryLoader(ds, batch_size=5, drop_last=True)) == 4
    plain = [
        int(v) for xb, _ in InMemoryLoader(ds, batch_size=4) for v in (xb[:, 0, 0, 0] * 255).round()
    ]
    assert plain == list(range(n))


def test_loader_shards_are_disjoint_and_cover():
    n = 10
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).contiguous()
    ds = ArrayDataset(x, torch.zeros(n, dtype=torch.int64), ["a"])
    shards = []
    for rank in range(3):
        loader = InMemoryLoader(ds, 2, shuffle=True, train=False, rank=rank, world_size=3)
        shards.append([int(v) for xb, _ in loader for v in (xb.flatten() * 255).round()])
    assert all(len(s) == 4 for s in shards)  # ceil(10 / 3), padded by wrap-around
    assert set().union(*map(set, shards)) == set(range(n))
    with pytest.raises(ValueError, match="rank"):
        InMemoryLoader(ds, rank=3, world_size=3)


def test_dataset_validation():
    with pytest.raises(TypeError, match="uint8"):
        ArrayDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError, match="targets"):
        ArrayDataset(torch.zeros(2, 4), torch.zeros(3, dtype=torch.int64), ["a"])
    with pytest.raises(ValueError, match=r"labels in \[0, 2\)"):
        ArrayDataset(torch.zeros(2, 4), torch.tensor([0, 2]), ["a", "b"])
    with pytest.raises(ValueError, match="normalization"):
        ArrayDataset(
            torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            ["a"],
            ((0.5,), (0.5,)),
        )
    ds = ArrayDataset(np.zeros((2, 3, 4, 4), np.uint8), np.array([0, 1]), ["a", "b"])
    assert ds.with_normalization("cifar10").normalization == (MEAN, STD)
    assert ds[1][1].item() == 1 and ds.class_counts().tolist() == [1, 1]
