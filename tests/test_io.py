"""The one atomic-write module: file modes, temporaries, and clear write errors."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from focalcal import _io


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_get_the_umask_mode_that_open_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
        written = [
            _io.atomic_write_text(tmp_path / "a.json", "{}"),
            _io.atomic_save_npz(tmp_path / "b.npz", x=np.arange(3)),
            _io.atomic_torch_save({"w": 1}, tmp_path / "c.ckpt"),
        ]
    finally:
        os.umask(old)
    assert _mode(tmp_path / "plain.txt") == 0o666 & ~umask
    for path in written:
        assert _mode(path) == 0o666 & ~umask, path


def test_plots_follow_the_same_mode(tmp_path):
    pytest.importorskip("matplotlib")
    from focalcal.plots import save_reliability_diagram

    old = os.umask(0o027)
    try:
        rng = np.random.default_rng(0)
        p = rng.dirichlet(np.ones(3), 200)
        out = save_reliability_diagram(tmp_path / "rd.png", p, p.argmax(1))
    finally:
        os.umask(old)
    assert _mode(out) == 0o640


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    target.chmod(0o600)
    _io.atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _io.atomic_write(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_full_disk_is_a_clear_error_naming_the_file(tmp_path):
    def no_space(fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(
        _io.FileWriteError, match=r"cannot write .*x\.npz.*No space.*free some space"
    ):
        _io.atomic_write(tmp_path / "x.npz", no_space)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_is_a_clear_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(_io.FileWriteError, match="permission"):
            _io.atomic_write_text(tmp_path / "x.txt", "x")
    finally:
        tmp_path.chmod(0o700)


def test_read_only_folder_as_root_in_a_real_read_only_mount(tmp_path):
    """Root ignores permission bits, so a read-only bind mount stands for a read-only disk."""
    if os.geteuid() != 0 or sys.platform != "linux":
        pytest.skip("needs root on Linux for a read-only bind mount")
    folder = tmp_path / "ro"
    folder.mkdir()
    script = (
        f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && "
        f"{sys.executable} -c \"from focalcal import _io; _io.atomic_write_text('{folder}/x.txt', 'x')\""
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60
    )
    if "mount" in result.stderr and "FileWriteError" not in result.stderr:
        pytest.skip(f"cannot make a read-only mount here: {result.stderr.strip()[:200]}")
    assert result.returncode != 0
    assert "read-only" in result.stderr and "x.txt" in result.stderr


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [
        tmp_path / ".last.ckpt.0123456789abcdef.tmp",
        tmp_path / "sub" / ".logits.npz.fedcba9876543210.tmp",
    ]
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / "last.ckpt"]
    for path in stale + kept:
        path.write_bytes(b"x")
    assert _io.remove_stale_temporaries(tmp_path) == sorted(stale)
    assert all(p.exists() for p in kept)
    assert _io.remove_stale_temporaries(tmp_path / "missing") == []
