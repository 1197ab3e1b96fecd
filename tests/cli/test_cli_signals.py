"""SIGTERM / SIGINT during ``focalcal train``: a failure status, a resumable run, the resume
command in the message; then ``--resume`` finishes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return None


def _default_sigint() -> None:
    """A child started in the background inherits an ignored SIGINT; Python then never raises
    KeyboardInterrupt. Restore the default so that the child sees Ctrl-C as a user would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_stops_training_resumably(tmp_path, tiny_features, train_args, signum):
    out = tmp_path / "run"
    # enough epochs that the signal lands mid-run; --resume must then run the remaining ones
    args = train_args(tiny_features["ind"], out, "ce", "--epochs", "12", "--no-evaluate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "focalcal.cli", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    ckpt = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    try:
        while _checkpoint_epoch(ckpt) is None:  # one epoch checkpointed
            assert proc.poll() is None, "training ended before the signal"
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.01)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum  # 143 / 130: what a shell reports for the signal
    assert "Traceback" not in stderr, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"focalcal train: error: stopped by {signum.name}; ")
    assert f"resume with: focalcal train --resume --out {out}" in last
    stopped_at = _checkpoint_epoch(ckpt)
    assert stopped_at is not None and stopped_at < 11, "the signal must land before the end"
    assert not (out / "status.json").exists()

    from focalcal.cli import main

    assert main(["train", "--resume", "--out", str(out), "--no-evaluate", "--no-progress"]) == 0
    assert json.loads((out / "status.json").read_text())["status"] == "finished"
    assert _checkpoint_epoch(ckpt) == 11
