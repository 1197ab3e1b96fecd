"""Environment faults and wrong hardware through the real command: one line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from focalcal.cli import main

SRC = os.environ.get("PYTHONPATH", "")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_gpu_without_a_gpu_is_refused_before_any_write(
    error_line, tmp_path, tiny_features, train_args, run_cli, capsys
):
    out = tmp_path / "run"
    done = run_cli(train_args(tiny_features["ind"], out, "ce", "--accelerator", "gpu"))
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert "no CUDA GPU is visible" in line and "--accelerator cpu" in line
    assert "CUDA build of torch" in line
    assert main(train_args(tiny_features["ind"], out, "ce", "--accelerator", "cuda")) == 2
    assert "'cuda' asks for a GPU, but no CUDA GPU" in error_line(capsys.readouterr().err)
    assert not out.exists()
    suite = tmp_path / "suite"  # the reproduction commands check before creating their folder
    for command in ("reproduce", "tune-gamma"):
        assert main([command, "--suite", "ci", "--out", str(suite), "--accelerator", "gpu"]) == 2
        assert "no CUDA GPU is visible" in error_line(capsys.readouterr().err, command)
    assert not suite.exists()


def test_devices_zero_and_unknown_accelerator(
    error_line, tmp_path, tiny_features, train_args, capsys
):
    out = tmp_path / "run"
    assert main(train_args(tiny_features["ind"], out, "ce", "--devices", "0")) == 2
    line = error_line(capsys.readouterr().err)
    assert "devices: expected a count >= 1" in line and "got 0" in line
    assert main(train_args(tiny_features["ind"], out, "ce", "--accelerator", "tpu9")) == 2
    assert "accelerator: unknown 'tpu9'; expected one of:" in error_line(capsys.readouterr().err)
    assert not out.exists()


def test_resume_refuses_flags_that_change_the_recipe(error_line, tmp_path, tiny_features, capsys):
    from focalcal.training import make_config, save_config

    out = tmp_path / "run"  # an unfinished run: its config, no checkpoint yet
    config = make_config("npz", "mlp", "ce", "cpu", data_root=str(tiny_features["ind"]))
    save_config(config, out / "config.json")
    assert main(["train", "--resume", "--out", str(out), "--epochs", "4", "--loss", "focal"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "epochs: 20 → 4" in line and "loss: 'ce' → 'focal'" in line and "--overwrite" in line
    assert json.loads((out / "config.json").read_text())["epochs"] == 20


_NO_SPACE = """
import errno, os

def fsync(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

os.fsync = fsync  # every atomic write flushes with fsync: the disk is full from the first one
"""


def test_a_full_disk_names_the_file(error_line, tmp_path, tiny_features, train_args):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_NO_SPACE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), SRC])}
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "focalcal.cli", *train_args(tiny_features["ind"], out)],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    line = error_line(done.stderr)
    assert str(out / "config.json") in line and "No space left on device" in line
    assert "free some space" in line
    assert not list(out.glob(".*.tmp"))  # the half-written temporary is gone


def test_a_read_only_disk_names_the_folder(error_line, tmp_path, tiny_features, train_args):
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
    line = error_line(done.stderr)
    assert "Read-only file system" in line and str(out) in line and "--out" in line
    assert not out.exists()


def test_a_download_without_network_is_one_line(error_line, tmp_path, monkeypatch, capsys):
    """The official URL pointed at a loopback port nothing listens on: the same refusal as no
    network, without leaving the machine."""
    import socket

    from focalcal.data import cifar as cifar_module

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    monkeypatch.setitem(
        cifar_module.CIFAR_ARCHIVES, ("cifar10", "python"), (url, "0" * 32, "cifar-10-batches-py")
    )
    out = tmp_path / "run"
    args = ["train", "--dataset", "cifar10", "--data-root", str(tmp_path / "data"),
            "--dataset-option", "download=true", "--model", "resnet8", "--loss", "ce",
            "--epochs", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 1
    line = error_line(capsys.readouterr().err)
    assert url in line and "cannot download" in line and "check the network" in line
