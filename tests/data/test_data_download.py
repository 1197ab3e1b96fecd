"""Checksums, downloads (from file:// URLs written here — no network) and safe extraction."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from focalcal.data import ChecksumError, extract_archive, get_dataset, md5sum
from focalcal.data import cifar as cifar_module
from focalcal.data.io import download_file, ensure_downloaded


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def make_cifar_archive(path: Path) -> np.ndarray:
    rows = np.random.default_rng(1).integers(0, 256, (2, 3072), dtype=np.uint8)
    with tarfile.open(path, "w:gz") as tf:
        _add_bytes(
            tf,
            "cifar-10-batches-py/test_batch",
            pickle.dumps({b"data": rows, b"labels": [7, 2]}, protocol=2),
        )
        meta = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2)
        _add_bytes(tf, "cifar-10-batches-py/batches.meta", meta)
    return rows


def test_md5sum_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    data = np.random.default_rng(0).bytes(3 << 20)  # several read chunks
    path.write_bytes(data)
    assert md5sum(path) == hashlib.md5(data).hexdigest()


def test_download_verify_extract_then_load(tmp_path, monkeypatch):
    served = tmp_path / "server" / "cifar-10-python.tar.gz"
    served.parent.mkdir()
    rows = make_cifar_archive(served)
    url, md5 = served.as_uri(), hashlib.md5(served.read_bytes()).hexdigest()
    monkeypatch.setitem(
        cifar_module.CIFAR_ARCHIVES, ("cifar10", "python"), (url, md5, "cifar-10-batches-py")
    )
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match=r"download=True"):
        get_dataset("cifar10", root=root, split="test")
    ds = get_dataset("cifar10", root=root, split="test", download=True)
    assert ds.targets.tolist() == [7, 2] and int(ds.inputs[1, 2, 0, 0]) == int(rows[1, 2048])
    assert (root / "cifar-10-python.tar.gz").is_file()
    assert not list(root.glob("*.part")) and not list(root.glob(".*.tmp"))


def test_checksum_mismatch_is_an_error_and_discards(tmp_path, monkeypatch):
    served = tmp_path / "archive.tar.gz"
    make_cifar_archive(served)
    bad = "0" * 32
    dest = tmp_path / "dl" / "archive.tar.gz"
    with pytest.raises(ChecksumError, match=f"expected {bad}"):
        download_file(served.as_uri(), dest, bad)
    assert not dest.exists() and not list(dest.parent.iterdir())
    # an existing file with the wrong checksum is not silently reused
    dest.write_bytes(b"truncated")
    with pytest.raises(ChecksumError, match="delete the file"):
        ensure_downloaded(served.as_uri(), dest, md5sum(served))
    monkeypatch.setitem(
        cifar_module.CIFAR_ARCHIVES,
        ("cifar10", "python"),
        (served.as_uri(), bad, "cifar-10-batches-py"),
    )
    with pytest.raises(ChecksumError):
        get_dataset("cifar10", root=tmp_path / "root2", split="test", download=True)
    assert not (tmp_path / "root2" / "cifar-10-batches-py").exists()


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/focalcal-evil.txt", "ok/../../evil.txt"])
def test_tar_path_traversal_refused(tmp_path, evil):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        _add_bytes(tf, "good/file.txt", b"fine")
        _add_bytes(tf, evil, b"bad")
    target = tmp_path / "out" / "inner"
    with pytest.raises(ValueError, match="outside"):
        extract_archive(archive, target)
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (target / "good").exists()  # nothing extracted when any member is unsafe


def test_tar_links_and_devices_refused(tmp_path):
    archive = tmp_path / "l.tar"
    with tarfile.open(archive, "w") as tf:
        link = tarfile.TarInfo("data/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        tf.addfile(link)
    with pytest.raises(ValueError, match="outside"):
        extract_archive(archive, tmp_path / "out")
    with tarfile.open(archive, "w") as tf:
        dev = tarfile.TarInfo("dev0")
        dev.type = tarfile.CHRTYPE
        tf.addfile(dev)
    with pytest.raises(ValueError, match="device"):
        extract_archive(archive, tmp_path / "out")
    with tarfile.open(archive, "w") as tf:  # a link that stays inside is fine
        _add_bytes(tf, "data/real.txt", b"x")
        link = tarfile.TarInfo("data/alias.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "real.txt"
        tf.addfile(link)
    extract_archive(archive, tmp_path / "ok")
    assert (tmp_path / "ok" / "data" / "alias.txt").read_bytes() == b"x"


def test_zip_traversal_refused_and_normal_zip_extracts(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine/a.txt", "ok")
        zf.writestr("../evil.txt", "bad")
    with pytest.raises(ValueError, match="outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine/a.txt", "ok")
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "fine" / "a.txt").read_text() == "ok"


def _chained_link_archive(path: Path) -> None:
    """``a -> .``, ``a/b -> ..``, then ``a/b/x``: each link alone points inside the root."""
    with tarfile.open(path, "w") as tf:
        for name, target in (("a", "."), ("a/b", "..")):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            tf.addfile(link)
        _add_bytes(tf, "a/b/x", b"escaped")


@pytest.mark.parametrize("with_data_filter", [True, False])
def test_chained_symlinks_refused_before_anything_is_written(
    tmp_path, monkeypatch, with_data_filter
):
    archive = tmp_path / "evil.tar"
    _chained_link_archive(archive)
    if not with_data_filter:  # the Pythons of requires-python that predate tarfile.data_filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    outside = tmp_path / "outside"
    target = outside / "root"
    target.mkdir(parents=True)
    with pytest.raises(ValueError, match=r"'a/b'.*through the link 'a'"):
        extract_archive(archive, target)
    assert list(outside.rglob("*")) == [target]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar", "outside"]


def test_links_inside_the_root_still_extract(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tf:
        _add_bytes(tf, "data/file.bin", b"payload")
        link = tarfile.TarInfo("data/alias.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "file.bin"
        tf.addfile(link)
    root = extract_archive(archive, tmp_path / "out")
    assert (root / "data" / "alias.bin").read_bytes() == b"payload"


def test_no_network_is_a_clear_download_error(tmp_path):
    # a port on loopback that nothing listens on: the same URLError as no network
    import socket

    from focalcal.data.io import DownloadError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "cifar.tar.gz"
    with pytest.raises(DownloadError, match=r"cannot download .*check the network.*cifar\.tar\.gz"):
        download_file(f"http://127.0.0.1:{port}/cifar.tar.gz", dest, md5=None, timeout=5)
    assert list(tmp_path.iterdir()) == []
