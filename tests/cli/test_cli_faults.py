"""Environment faults and wrong hardware through the real command: one line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

SRC = os.environ.get("PYTHONPATH", "")


def _one_line_error(done: subprocess.CompletedProcess[str], command: str = "train") -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"focalcal {command}: error: "), lines
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_without_a_gpu_is_refused_before_any_write(
    tmp_path, tiny_features, train_args, run_cli, accelerator
):
    out = tmp_path / "run"
    done = run_cli(train_args(tiny_features["ind"], out, "ce", "--accelerator", accelerator))
    assert done.returncode == 2
    line = _one_line_error(done)
    assert "no CUDA GPU is visible" in line and "--accelerator cpu" in line
    assert "CUDA build of torch" in line
    assert not out.exists()


def test_devices_zero_and_unknown_accelerator(tmp_path, tiny_features, train_args, run_cli):
    out = tmp_path / "run"
    done = run_cli(train_args(tiny_features["ind"], out, "ce", "--devices", "0"))
    assert done.returncode == 2
    assert "devices: expected a count >= 1" in _one_line_error(done) and "got 0" in done.stderr
    done = run_cli(train_args(tiny_features["ind"], out, "ce", "--accelerator", "tpu9"))
    assert done.returncode == 2
    assert "accelerator: unknown 'tpu9'; expected one of:" in _one_line_error(done)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_reproduce_checks_the_hardware_before_writing(tmp_path, run_cli):
    out = tmp_path / "suite"
    done = run_cli(["reproduce", "--suite", "ci", "--out", str(out), "--accelerator", "gpu"])
    assert done.returncode == 2
    assert "no CUDA GPU is visible" in _one_line_error(done, "reproduce")
    assert not out.exists()


def test_resume_refuses_flags_that_change_the_recipe(tmp_path, tiny_features, train_args):
    from focalcal.training import make_config, save_config

    out = tmp_path / "run"  # an unfinished run: its config, no checkpoint yet
    config = make_config("npz", "mlp", "ce", "cpu", data_root=str(tiny_features["ind"]))
    save_config(config, out / "config.json")
    args = ["train", "--resume", "--out", str(out), "--epochs", "4", "--loss", "focal"]
    done = subprocess.run(
        [sys.executable, "-m", "focalcal.cli", *args], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 2
    line = _one_line_error(done)
    assert "--epochs 4 (the run has 20)" in line and "--loss 'focal' (the run has 'ce')" in line
    assert json.loads((out / "config.json").read_text())["epochs"] == 20


_NO_SPACE = """
import errno, os

def fsync(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

os.fsync = fsync  # every atomic write flushes with fsync: the disk is full from the first one
"""


def test_a_full_disk_names_the_file(tmp_path, tiny_features, train_args):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_NO_SPACE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), SRC])}
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "focalcal.cli", *train_args(tiny_features["ind"], out)],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    line = _one_line_error(done)
    assert str(out / "config.json") in line and "No space left on device" in line
    assert "free some space" in line
    assert not list(out.glob(".*.tmp"))  # the half-written temporary is gone


def test_a_read_only_disk_names_the_folder(tmp_path, tiny_features, train_args):
    """Root ignores permission bits, so a read-only bind mount stands for a read-only disk."""
    if os.geteuid() != 0 or sys.platform != "linux":
        pytest.skip("needs root on Linux for a read-only bind mount")
    folder = tmp_path / "ro"
    folder.mkdir()
    out = folder / "run"
    command = " ".join(
        [sys.executable, "-m", "focalcal.cli", *train_args(tiny_features["ind"], out)]
    )
    script = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && {command}"
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=240
    )
    if "mount" in done.stderr and "focalcal" not in done.stderr:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()[:200]}")
    assert done.returncode == 1
    line = _one_line_error(done)
    assert "Read-only file system" in line and str(out) in line and "--out" in line
    assert not out.exists()
