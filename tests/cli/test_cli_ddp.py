"""A real two-process DDP run (gloo, CPU) trains and evaluates; its evaluation equals the
single-process evaluation of the same checkpoint."""

from __future__ import annotations

import json

import numpy as np
import torch


def test_two_process_ddp_equals_single_process_evaluation(
    tmp_path, tiny_features, train_args, run_cli
):
    run = tmp_path / "ddp"
    args = train_args(tiny_features["ind"], run, "dual_focal", "--gamma", "3")
    args += ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--n-bootstrap", "50"]
    args += ["--ood", f"npz:{tiny_features['ood']}"]
    done = run_cli(args, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed_backend=gloo" in done.stdout + done.stderr
    assert "Starting with 2 processes" in done.stdout + done.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["world_size"] == 2
    ddp_metrics = json.loads((run / "metrics.json").read_text())

    # The global batch of 64 was split into 2 × 32: 360 samples → 6 steps per epoch per rank.
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4 * 6

    single = tmp_path / "single"
    again = run_cli(
        ["evaluate", str(run), "--recompute-logits", "--out", str(single), "--n-bootstrap", "50"]
    )
    assert again.returncode == 0, again.stderr[-3000:]
    single_metrics = json.loads((single / "metrics.json").read_text())
    with np.load(run / "logits.npz") as a, np.load(single / "logits.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("temperature", "test", "ood"):
        assert ddp_metrics[key] == single_metrics[key], key
    assert set(ddp_metrics["ood"]) == {"news_other"}
