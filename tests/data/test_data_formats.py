"""Readers of the official formats, on small files written here in each format."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from focalcal.data import NORMALIZATIONS, get_dataset, paper_split_indices
from focalcal.data import mnist as mnist_module

RNG = np.random.default_rng(0)


# --- CIFAR ----------------------------------------------------------------------------------------


def _cifar_rows(n: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _pixel(row: np.ndarray, c: int, r: int, col: int) -> int:
    """Official layout: 1024 red, then green, then blue bytes, each 32×32 row-major."""
    return int(row[c * 1024 + r * 32 + col])


def write_cifar10_python(
    root: Path, per_batch: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        data, labels = _cifar_rows(per_batch), RNG.integers(0, 10, per_batch).tolist()
        batch = {
            b"batch_label": b"training batch",
            b"labels": labels,
            b"data": data,
            b"filenames": [b"x.png"] * per_batch,
        }
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
        xs.append(data)
        ys += labels
    test_x, test_y = _cifar_rows(3), [9, 0, 4]
    (folder / "test_batch").write_bytes(
        pickle.dumps({b"labels": test_y, b"data": test_x}, protocol=2)
    )
    names = [f"class{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2)
    )
    return np.concatenate(xs), np.asarray(ys), test_x, np.asarray(test_y)


def test_cifar10_python_pixels_labels_split(tmp_path):
    train_x, train_y, test_x, test_y = write_cifar10_python(tmp_path)
    test = get_dataset("cifar10", root=tmp_path, split="test")
    assert test.inputs.shape == (3, 3, 32, 32) and test.inputs.dtype == torch.uint8
    assert test.targets.tolist() == test_y.tolist()
    for n, c, r, col in [(0, 0, 0, 0), (1, 2, 31, 5), (2, 1, 7, 30)]:
        assert int(test.inputs[n, c, r, col]) == _pixel(test_x[n], c, r, col)
    assert test.classes == [f"class{i}" for i in range(10)]
    assert test.normalization == NORMALIZATIONS["cifar10"]

    full = get_dataset("cifar10", root=tmp_path, split="train", val_size=0)
    assert len(full) == 20 and full.targets.tolist() == train_y.tolist()
    train_idx, val_idx = paper_split_indices(20, 5, seed=1)
    val = get_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", split="val", val_size=5)
    train = get_dataset("cifar10", root=tmp_path, split="train", val_size=5)
    assert val.source_indices.tolist() == sorted(val_idx.tolist())
    assert train.source_indices.tolist() == sorted(train_idx.tolist())
    assert val.targets.tolist() == train_y[np.sort(val_idx)].tolist()
    n0 = int(np.sort(val_idx)[0])
    assert int(val.inputs[0, 1, 2, 3]) == _pixel(train_x[n0], 1, 2, 3)
    # normalisation is the same for every split (the official code's CIFAR-100 test bug avoided)
    assert val.normalization == train.normalization == test.normalization


def test_cifar100_python_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data, fine, coarse = _cifar_rows(6), [99, 0, 5, 17, 3, 42], [19, 0, 1, 2, 3, 4]
    for name in ("train", "test"):
        batch = {
            "data": data,
            "fine_labels": fine,
            "coarse_labels": coarse,
        }  # str keys also accepted
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {
        "fine_label_names": [f"f{i}" for i in range(100)],
        "coarse_label_names": [f"c{i}" for i in range(20)],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta))
    ds = get_dataset("cifar100", root=tmp_path, split="test")
    assert ds.targets.tolist() == fine and ds.num_classes == 100 and ds.classes[99] == "f99"
    ds = get_dataset("cifar100", root=tmp_path, split="test", label_type="coarse")
    assert ds.targets.tolist() == coarse and ds.num_classes == 20
    assert ds.normalization == NORMALIZATIONS["cifar100"] == NORMALIZATIONS["cifar10"]
    assert (
        get_dataset("cifar100", root=tmp_path, split="test", normalization=None).normalization
        is None
    )


def test_cifar_binary_layouts(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    records = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels, rows = RNG.integers(0, 10, 2, dtype=np.uint8), _cifar_rows(2)
        (folder / name).write_bytes(np.concatenate([labels[:, None], rows], 1).tobytes())
        records[name] = (labels, rows)
    (folder / "batches.meta.txt").write_text("\n".join(f"n{i}" for i in range(10)) + "\n\n")
    ds = get_dataset("cifar10", root=tmp_path, split="test", format="binary")
    labels, rows = records["test_batch.bin"]
    assert ds.targets.tolist() == labels.tolist() and ds.classes == [f"n{i}" for i in range(10)]
    assert int(ds.inputs[1, 2, 10, 20]) == _pixel(rows[1], 2, 10, 20)
    assert (
        len(get_dataset("cifar10", root=tmp_path, split="train", val_size=0)) == 10
    )  # auto → binary

    folder = tmp_path / "c100" / "cifar-100-binary"
    folder.mkdir(parents=True)
    coarse, fine, rows = np.array([3, 19], np.uint8), np.array([77, 1], np.uint8), _cifar_rows(2)
    for name in ("train.bin", "test.bin"):
        (folder / name).write_bytes(
            np.concatenate([coarse[:, None], fine[:, None], rows], 1).tobytes()
        )
    (folder / "fine_label_names.txt").write_text("\n".join(f"f{i}" for i in range(100)))
    (folder / "coarse_label_names.txt").write_text("\n".join(f"c{i}" for i in range(20)))
    ds = get_dataset("cifar100", root=tmp_path / "c100", split="test")
    assert ds.targets.tolist() == [77, 1] and int(ds.inputs[0, 0, 0, 1]) == _pixel(rows[0], 0, 0, 1)
    assert get_dataset(
        "cifar100", root=tmp_path / "c100", split="test", label_type="coarse"
    ).targets.tolist() == [3, 19]


def test_cifar_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-python\.tar\.gz.*download=True"):
        get_dataset("cifar10", root=tmp_path, split="test")
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    (folder / "test_batch.bin").write_bytes(b"\x00" * 3000)  # truncated record
    with pytest.raises(ValueError, match=r"test_batch\.bin.*truncated"):
        get_dataset("cifar10", root=tmp_path, split="test", format="binary")
    with pytest.raises(ValueError, match="format"):
        get_dataset("cifar10", root=tmp_path, split="test", format="matlab")
    with pytest.raises(ValueError, match="split"):
        get_dataset("cifar10", root=tmp_path, split="valid")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['val_sise'\].*'val_size'"):
        get_dataset("cifar10", root=tmp_path, val_sise=10)  # a typo is never silently ignored


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(ValueError, match="refusing to load"):
        get_dataset("cifar10", root=tmp_path, split="test")
    assert not marker.exists()


# --- MNIST / Fashion-MNIST idx ------------------------------------------------------------------


def _idx_bytes(arr: np.ndarray) -> bytes:
    return (
        struct.pack(">HBB", 0, 0x08, arr.ndim)
        + struct.pack(f">{arr.ndim}i", *arr.shape)
        + arr.tobytes()
    )


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
        else:
            (folder / stem).write_bytes(_idx_bytes(arr))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_raw_and_gz(tmp_path, gz):
    images = RNG.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = RNG.integers(0, 10, 7, dtype=np.uint8)
    write_idx(tmp_path, "t10k", images, labels, gz)
    write_idx(tmp_path, "train", images[:5], labels[:5], gz)
    ds = get_dataset("mnist", root=tmp_path, split="test")
    assert ds.inputs.shape == (7, 1, 28, 28) and np.array_equal(ds.inputs[:, 0].numpy(), images)
    assert ds.targets.tolist() == labels.tolist() and ds.normalization == NORMALIZATIONS["mnist"]
    assert not ds.augmentation.hflip  # digits are not flipped
    val = get_dataset("fashion_mnist", root=tmp_path, split="val", val_size=2)
    assert len(val) == 2 and val.classes[9] == "Ankle boot" and val.augmentation.hflip


def test_fashion_mnist_default_root_falls_back_to_debian_path(tmp_path, monkeypatch):
    images = RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "debian", "t10k", images, np.array([1, 2, 3], np.uint8), gz=True)
    monkeypatch.setenv("FOCALCAL_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    assert get_dataset("fashion_mnist", split="test").targets.tolist() == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\.gz.*download=True"):
        get_dataset("mnist", split="test")


def test_idx_corrupt(tmp_path):
    images = RNG.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    write_idx(tmp_path, "t10k", images, np.zeros(4, np.uint8), gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.*truncated"):
        get_dataset("mnist", root=tmp_path, split="test")
    path.write_bytes(b"\x01\x02\x03\x04" + b"\x00" * 20)
    with pytest.raises(ValueError, match="magic"):
        get_dataset("mnist", root=tmp_path, split="test")


def test_idx_float_pixels_are_refused_not_blackened(tmp_path):
    """Float pixels in [0, 1] cast to uint8 would be all-black images: a clear error instead."""
    write_idx(tmp_path, "t10k", RNG.integers(0, 256, (2, 4, 4), dtype=np.uint8),
              np.zeros(2, np.uint8), gz=False)  # fmt: skip
    pixels = RNG.random((2, 4, 4)).astype(">f4")
    header = struct.pack(">HBB", 0, 0x0D, 3) + struct.pack(">3i", *pixels.shape)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + pixels.tobytes())
    with pytest.raises(
        ValueError, match=r"t10k-images-idx3-ubyte: expected unsigned-byte.*float32"
    ):
        get_dataset("mnist", root=tmp_path, split="test")


# --- SVHN .mat ------------------------------------------------------------------------------------


def test_svhn_mat(tmp_path):
    from scipy.io import savemat

    x = RNG.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [9], [10], [5]], dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    ds = get_dataset("svhn", root=tmp_path, split="test")
    assert ds.targets.tolist() == [0, 1, 9, 0, 5]  # the official label 10 is the digit 0
    assert ds.inputs.shape == (5, 3, 32, 32)
    assert int(ds.inputs[3, 2, 4, 7]) == int(x[4, 7, 2, 3])  # X[row, col, channel, n]
    with pytest.raises(FileNotFoundError, match=r"train_32x32\.mat.*ufldl"):
        get_dataset("svhn", root=tmp_path, split="train")
    (tmp_path / "train_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"train_32x32\.mat"):
        get_dataset("svhn", root=tmp_path, split="train")


# --- Tiny-ImageNet --------------------------------------------------------------------------------


def write_tiny_imagenet(root: Path, wnids: list[str], per_class: int, n_val: int) -> dict[str, int]:
    from PIL import Image

    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        folder = base / "train" / w / "images"
        folder.mkdir(parents=True)
        for k in range(per_class):
            img = np.full((64, 64, 3), (k * 20) % 256, np.uint8)
            Image.fromarray(img).save(folder / f"{w}_{k}.JPEG", quality=95)
    lines, truth = [], {}
    for i in range(n_val):
        w = wnids[i % len(wnids)]
        Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            base / "val" / "images" / f"val_{i}.JPEG"
        )
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
        truth[f"val_{i}.JPEG"] = sorted(wnids).index(w)
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return truth


def test_tiny_imagenet_layout_and_protocol(tmp_path):
    from PIL import Image

    wnids = ["n09999999", "n01443537", "n02085620"]  # not sorted, as in the official wnids.txt
    truth = write_tiny_imagenet(tmp_path, wnids, per_class=12, n_val=6)
    cache = tmp_path / "cache"
    test = get_dataset("tiny_imagenet", root=tmp_path, split="test", cache=cache)
    assert test.classes == sorted(wnids) and len(test) == 6
    assert test.targets.tolist() == [truth[f"val_{i}.JPEG"] for i in range(6)]
    ref = np.asarray(
        Image.open(tmp_path / "tiny-imagenet-200/val/images/val_4.JPEG").convert("RGB")
    )
    assert np.array_equal(test.inputs[4].permute(1, 2, 0).numpy(), ref)
    assert test.normalization == NORMALIZATIONS["imagenet"]
    train = get_dataset("tiny_imagenet", root=tmp_path, split="train", val_per_class=2, cache=cache)
    val = get_dataset("tiny_imagenet", root=tmp_path, split="val", val_per_class=2, cache=cache)
    assert len(train) == 30 and len(val) == 6
    assert train.class_counts().tolist() == [10, 10, 10] and val.class_counts().tolist() == [
        2,
        2,
        2,
    ]
    # validation = the images with the largest indices k (10, 11), sorted numerically (not "_10" < "_2")
    expected_val_pixels = sorted({(10 * 20) % 256, (11 * 20) % 256})
    assert sorted(set(val.inputs[:, 0, 32, 32].tolist())) == pytest.approx(
        expected_val_pixels, abs=3
    )
    small = get_dataset("tiny_imagenet", root=tmp_path, split="test", image_size=32, cache=False)
    assert small.input_shape == (3, 32, 32)
    import shutil

    shutil.rmtree(tmp_path / "tiny-imagenet-200" / "train")
    with pytest.raises(FileNotFoundError, match="train"):
        get_dataset("tiny_imagenet", root=tmp_path, split="train", cache=False)
    assert len(get_dataset("tiny_imagenet", root=tmp_path, split="test", cache=cache)) == 6


# --- ImageFolder ----------------------------------------------------------------------------------


def write_png_tree(
    folder: Path, classes: dict[str, int], size=(6, 5), mode="RGB"
) -> dict[Path, np.ndarray]:
    from PIL import Image

    written = {}
    for cls, n in classes.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (size[0], size[1], 3) if mode == "RGB" else size
            arr = RNG.integers(0, 256, shape, dtype=np.uint8)
            path = folder / cls / f"{i:03d}.png"
            Image.fromarray(arr).save(path)
            written[path] = arr
    return written


def test_imagefolder_split_layout(tmp_path):
    train = write_png_tree(tmp_path / "train", {"zebra": 6, "ant": 4})
    test = write_png_tree(tmp_path / "test", {"ant": 2, "zebra": 1})
    cache = tmp_path / "cache"
    ds = get_dataset("imagefolder", root=tmp_path, split="test", cache=cache)
    assert ds.classes == ["ant", "zebra"] and ds.targets.tolist() == [0, 0, 1]
    assert ds.input_shape == (3, 6, 5)
    assert np.array_equal(
        ds.inputs[2].permute(1, 2, 0).numpy(), test[tmp_path / "test/zebra/000.png"]
    )
    # "auto" normalisation = statistics of the training folder, independently recomputed here
    pixels = np.stack(list(train.values())).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(ds.normalization[0], pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(ds.normalization[1], pixels.std(0), rtol=1e-9)
    tr = get_dataset("imagefolder", root=tmp_path, split="train", val_size=3, cache=cache)
    va = get_dataset("imagefolder", root=tmp_path, split="val", val_size=3, cache=cache)
    assert len(tr) == 7 and len(va) == 3
    assert va.source_indices.tolist() == sorted(paper_split_indices(10, 3, 1)[1].tolist())
    assert tr.normalization == va.normalization == ds.normalization
    assert len(list(cache.glob("*.npy"))) == 2  # train and test decoded once each, cached
    # edited files invalidate the cache
    from PIL import Image

    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "test/zebra/000.png")
    os.utime(tmp_path / "test/zebra/000.png", ns=(1, 1))
    again = get_dataset("imagefolder", root=tmp_path, split="test", cache=cache, normalization=None)
    assert int(again.inputs[2].sum()) == 0


def test_imagefolder_bare_tree_sizes_modes_and_errors(tmp_path):
    write_png_tree(tmp_path / "bare", {"a": 3, "b": 3}, size=(4, 4), mode="L")
    ds = get_dataset(
        "imagefolder",
        root=tmp_path / "bare",
        split="test",
        mode="L",
        cache=False,
        normalization="mnist",
    )
    assert (
        ds.input_shape == (1, 4, 4) and len(ds) == 6 and ds.normalization == NORMALIZATIONS["mnist"]
    )
    assert (
        len(
            get_dataset("imagefolder", root=tmp_path / "bare", split="val", val_size=2, cache=False)
        )
        == 2
    )
    write_png_tree(tmp_path / "mixed", {"a": 1}, size=(4, 4))
    write_png_tree(tmp_path / "mixed", {"b": 1}, size=(8, 6))
    with pytest.raises(ValueError, match="image_size"):
        get_dataset("imagefolder", root=tmp_path / "mixed", split="test", cache=False)
    resized = get_dataset(
        "imagefolder", root=tmp_path / "mixed", split="test", image_size=(5, 7), cache=False
    )
    assert resized.input_shape == (3, 5, 7)
    write_png_tree(tmp_path / "split/train", {"a": 2})
    write_png_tree(tmp_path / "split/test", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match=r"\['b'\].*training classes"):
        get_dataset("imagefolder", root=tmp_path / "split", split="test", cache=False)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images found"):
        get_dataset("imagefolder", root=tmp_path / "empty", split="test", cache=False)
    (tmp_path / "corrupt" / "a").mkdir(parents=True)
    (tmp_path / "corrupt" / "a" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"x\.jpg.*corrupt"):
        get_dataset("imagefolder", root=tmp_path / "corrupt", split="test", cache=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        get_dataset("imagefolder", root=tmp_path / "nowhere")


# --- npz --------------------------------------------------------------------------------------------


def test_npz_features_images_and_val_keys(tmp_path):
    xf = RNG.normal(size=(30, 4)).astype(np.float64)
    path = tmp_path / "feat.npz"
    np.savez(path, x_train=xf, y_train=np.arange(30) % 3, x_test=xf[:5], y_test=np.arange(5) % 3,
             class_names=np.array(["x", "y", "z"]))  # fmt: skip
    test = get_dataset("npz", root=path, split="test")
    assert (
        test.inputs.dtype == torch.float32
        and test.input_shape == (4,)
        and test.normalization is None
    )
    np.testing.assert_allclose(test.inputs.numpy(), xf[:5].astype(np.float32))
    val = get_dataset("npz", root=path, split="val")  # carved: 10 % of 30
    assert val.source_indices.tolist() == sorted(paper_split_indices(30, 0.1, 1)[1].tolist())
    assert val.classes == ["x", "y", "z"]

    imgs = RNG.integers(0, 256, (8, 5, 6, 3), dtype=np.uint8)  # Keras channels-last
    path = tmp_path / "img.npz"
    np.savez(path, x_train=imgs, y_train=np.arange(8)[:, None] % 2, x_test=imgs[:2] / 255.0,
             y_test=np.array([1, 0]), x_val=imgs[:3], y_val=np.array([0, 0, 1]))  # fmt: skip
    val = get_dataset("npz", root=path, split="val")
    assert len(val) == 3 and val.input_shape == (3, 5, 6) and val.classes == ["0", "1"]
    assert np.array_equal(val.inputs.permute(0, 2, 3, 1).numpy(), imgs[:3])
    test = get_dataset("npz", root=path, split="test")
    assert np.array_equal(
        test.inputs.permute(0, 2, 3, 1).numpy(), imgs[:2]
    )  # [0, 1] floats → uint8
    assert len(get_dataset("npz", root=path, split="train")) == 8  # x_val given: nothing carved
    flat = imgs.reshape(8, -1).astype(np.float64)
    np.testing.assert_allclose(
        test.normalization[0], (flat.reshape(-1, 3) / 255).mean(0), rtol=1e-9
    )


@pytest.mark.parametrize("keep", [0, 40, 0.6, -1])
def test_npz_truncated_or_corrupt_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "feats.npz"
    np.savez_compressed(path, x_train=RNG.random((200, 30)), y_train=np.zeros(200, int),
                        x_test=RNG.random((50, 30)), y_test=np.zeros(50, int))  # fmt: skip
    data = path.read_bytes()
    if keep == -1:  # flip bytes in the middle of the first member's compressed data
        middle = len(data) // 4
        data = (
            data[:middle]
            + bytes(b ^ 0xFF for b in data[middle : middle + 64])
            + data[middle + 64 :]
        )
    else:
        data = data[: int(len(data) * keep) if isinstance(keep, float) else keep]
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"feats\.npz.*(not a readable|truncated or corrupt)"):
        get_dataset("npz", root=path, split="train", val_size=0)


def test_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((3, 2)), y_train=np.zeros(3))
    with pytest.raises(ValueError, match=r"missing arrays \['x_test', 'y_test'\]"):
        get_dataset("npz", root=path, split="test")
    np.savez(path, x_train=np.zeros((3, 2)), y_train=np.array([0, 1, 5]), x_test=np.zeros((1, 2)),
             y_test=np.array([0]), class_names=np.array(["a", "b"]))  # fmt: skip
    with pytest.raises(ValueError, match="label 5 but only 2 class_names"):
        get_dataset("npz", root=path, split="train", val_size=0)
    np.savez(
        path,
        x_train=np.full((3, 2, 2), 300),
        y_train=np.zeros(3, int),
        x_test=np.zeros((1, 2, 2)),
        y_test=np.zeros(1, int),
    )
    with pytest.raises(ValueError, match="x_train images must be uint8"):
        get_dataset("npz", root=path, split="train")
    np.savez(
        path,
        x_train=np.array([[np.nan, 1.0]]),
        y_train=np.zeros(1, int),
        x_test=np.zeros((1, 2)),
        y_test=np.zeros(1, int),
    )
    with pytest.raises(ValueError, match="NaN"):
        get_dataset("npz", root=path, split="train", val_size=0)
    np.savez(path, x_train=np.zeros((3, 4)), y_train=np.zeros(3, int), x_test=np.zeros((2, 5)),
             y_test=np.zeros(2, int))  # fmt: skip
    with pytest.raises(ValueError, match=r"x_test samples have shape \(5,\) but x_train .*\(4,\)"):
        get_dataset("npz", root=path, split="train", val_size=0)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        get_dataset("npz", root=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="root"):
        get_dataset("npz")
    with pytest.raises(ValueError, match="download"):
        get_dataset("npz", root=path, download=True)


# --- CIFAR-10-C -------------------------------------------------------------------------------------


def test_cifar10_c_npy_layout(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    n = 4
    images = RNG.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
    labels = np.tile(np.array([3, 1, 4, 1]), 5)
    np.save(folder / "fog.npy", images)
    np.save(folder / "labels.npy", labels)
    ds = get_dataset("cifar10_c", root=tmp_path, split="test", corruption="fog", severity=3)
    assert len(ds) == n and ds.targets.tolist() == [3, 1, 4, 1]
    assert np.array_equal(ds.inputs.permute(0, 2, 3, 1).numpy(), images[2 * n : 3 * n])
    assert ds.normalization == NORMALIZATIONS["cifar10"]
    with pytest.raises(ValueError, match="severity"):
        get_dataset("cifar10_c", root=tmp_path, split="test", corruption="fog", severity=6)
    with pytest.raises(ValueError, match="corruption"):
        get_dataset("cifar10_c", root=tmp_path, split="test", corruption="rain")
    with pytest.raises(ValueError, match="split"):
        get_dataset("cifar10_c", root=tmp_path, split="train", corruption="fog")
    with pytest.raises(FileNotFoundError, match=r"snow\.npy.*CIFAR-10-C\.tar"):
        get_dataset("cifar10_c", root=tmp_path, split="test", corruption="snow")
