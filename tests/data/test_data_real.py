"""The real data sets in ../shared/data and Debian's Fashion-MNIST (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from focalcal.data import get_dataset, paper_split_indices
from focalcal.data.imagefolder import list_image_folder
from focalcal.data.io import decode_images
from focalcal.data.mnist import DEBIAN_FASHION_MNIST

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def test_cifar10_jpeg_imagefolder_counts_and_labels(shared_data: Path):
    root = shared_data / "cifar10-jpeg"
    if not root.is_dir():
        pytest.skip("cifar10-jpeg not present")
    for split, n in (("train", 50000), ("test", 10000)):
        paths, labels, classes = list_image_folder(root / split)  # counting only: no decoding
        assert len(paths) == n and classes == CIFAR10_CLASSES
        assert np.bincount(labels).tolist() == [n // 10] * 10
    # labels and pixels agree with lossless copies of the official images (JPEG q75: ~30 dB)
    ref = np.load(shared_data / "cifar-lossless-samples.npz")
    idx, ref_x, ref_y = ref["cifar10_test_idx"], ref["cifar10_test_x"], ref["cifar10_test_y"]
    test_paths, test_labels, _ = list_image_folder(root / "test")
    by_index = {int(p.stem): (p, lab) for p, lab in zip(test_paths, test_labels, strict=True)}
    paths = [by_index[int(i)][0] for i in idx]
    assert [by_index[int(i)][1] for i in idx] == ref_y.tolist()
    decoded = decode_images(paths, cache=False).transpose(0, 2, 3, 1).astype(np.float64)
    mse = ((decoded - ref_x.astype(np.float64)) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 25


def test_tiny_imagenet_val_as_test_split(shared_data: Path, tmp_path):
    root = shared_data / "tiny-imagenet-200"
    if not root.is_dir():
        pytest.skip("tiny-imagenet-200 not present")
    ds = get_dataset("tiny_imagenet", root=root, split="test", cache=tmp_path)
    assert len(ds) == 10000 and ds.num_classes == 200 and ds.input_shape == (3, 64, 64)
    assert ds.class_counts().tolist() == [50] * 200
    wnids = sorted((root / "wnids.txt").read_text().split())
    first = (root / "val" / "val_annotations.txt").read_text().splitlines()[0].split("\t")
    assert ds.classes[int(ds.targets[0])] == first[1] and wnids == ds.classes
    with pytest.raises(FileNotFoundError, match="train"):  # no train/ here: never tune on test
        get_dataset("tiny_imagenet", root=root, split="val", cache=tmp_path)


def test_20newsgroups_features_npz(shared_data: Path):
    path = shared_data / "20newsgroups" / "20news-bydate-minilm-l6.npz"
    if not path.is_file():
        pytest.skip("20 Newsgroups features not present")
    full = get_dataset("npz", root=path, split="train", val_size=0)
    test = get_dataset("npz", root=path, split="test")
    assert (len(full), len(test)) == (11314, 7532)
    assert full.num_classes == test.num_classes == 20 and full.input_shape == (384,)
    with np.load(path) as raw:
        assert torch.equal(test.targets, torch.from_numpy(raw["y_test"].astype(np.int64)))
        assert full.classes == [str(c) for c in raw["class_names"]]
    val = get_dataset("npz", root=path, split="val")
    assert len(val) == 1131 and val.source_indices.tolist() == sorted(
        paper_split_indices(11314, 0.1, 1)[1].tolist()
    )


def test_fashion_mnist_debian_package(tmp_path, monkeypatch):
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip(f"{DEBIAN_FASHION_MNIST} absent (apt-get install dataset-fashion-mnist)")
    monkeypatch.setenv("FOCALCAL_DATA", str(tmp_path))  # nothing there: root=None finds Debian's
    train = get_dataset("fashion_mnist", split="train", val_size=0)
    test = get_dataset("fashion_mnist", root=DEBIAN_FASHION_MNIST, split="test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.input_shape == (1, 28, 28) and train.class_counts().tolist() == [6000] * 10
    assert test.class_counts().tolist() == [1000] * 10
    val = get_dataset("fashion_mnist", split="val")  # the default 10 % draw
    assert len(val) == 6000 and val.source_indices.tolist() == sorted(
        paper_split_indices(60000, 0.1, 1)[1].tolist()
    )
