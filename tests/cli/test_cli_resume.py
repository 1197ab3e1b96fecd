"""SIGKILL a training process mid-run, resume it, and reach the uninterrupted run's results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError):
        return None


def test_sigkill_then_resume_matches_uninterrupted_run(
    tmp_path, tiny_features, train_args, run_cli
):
    data = tiny_features["ind"]
    # A longer schedule than the other tests so the kill lands mid-run; milestones after the
    # kill point check that the LR schedule resumes at the right epoch.
    schedule = ["--epochs", "8", "--milestones", "3", "6", "--no-evaluate"]
    full = tmp_path / "full"
    done = run_cli(train_args(data, full, "adafocal", *schedule))
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    args = train_args(data, killed, "adafocal", *schedule)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "focalcal.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    ckpt = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    try:
        while (_checkpoint_epoch(ckpt) or 0) < 1:  # at least two epochs checkpointed
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    epoch_at_kill = _checkpoint_epoch(ckpt)
    assert epoch_at_kill is not None and epoch_at_kill < 7, "the kill must land before the end"
    assert not (killed / "status.json").exists()
    assert not (killed / "logits.npz").exists()

    # Without --resume the unfinished run is protected.
    from focalcal.cli import main

    assert main(args) == 2
    assert _checkpoint_epoch(ckpt) == epoch_at_kill

    resumed = run_cli([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout

    with np.load(full / "logits.npz") as a, np.load(killed / "logits.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:  # deterministic CPU mode: bit-identical
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # The adaptive loss state (AdaFocal's γ per bin, updated every epoch) resumed too.
    sa = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(ckpt, weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys() and any(k.startswith("criterion.") for k in sa)
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)
    status = json.loads((killed / "status.json").read_text())
    assert status["status"] == "finished"
    # the first attempt's logs are kept; the resumed attempt logs beside them
    assert (killed / "logs" / "metrics.csv").is_file()
    assert (killed / "logs" / "resume-1" / "metrics.csv").is_file()


def test_finished_run_needs_overwrite(tmp_path, tiny_features, train_args, capsys):
    from focalcal.cli import main

    out = tmp_path / "run"
    args = train_args(tiny_features["ind"], out, "ce", "--epochs", "1", "--no-evaluate")
    assert main(args) == 0
    before = (out / "logits.npz").read_bytes()
    assert main(args) == 2  # refused: a finished run is never overwritten silently
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "logits.npz").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0
