"""A user's study from a TOML file on their own npz: γ tuned, 2 losses × 2 seeds, interrupted by
a real SIGKILL and re-run with the finished runs skipped; and ``tune_gamma`` on train options.

Validation ECEs are recomputed here by a plain loop over bins, not with focalcal's metrics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightning")

from focalcal.training import make_config, reproduce, tune_gamma, tune_losses
from focalcal.training.demo import DEMO_DATA


def loop_ece(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """15-bin ECE by a plain loop: (lo, hi] bins, confidence 0 in the first bin."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf, correct = p.max(1), p.argmax(1) == labels
    total = 0.0
    for b in range(n_bins):
        inside = (conf > b / n_bins) & (conf <= (b + 1) / n_bins) | ((b == 0) & (conf <= 0))
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - correct[inside].mean())
    return float(total)


STUDY = """
name = "my-news"
description = "CE vs DFL on my 5-topic features"
seeds = 2
gamma_grid = [2.0, 5.0]
n_bootstrap = 20
recipe = {{ epochs = 2, milestones = [1], batch_size = 64 }}

[[datasets]]
key = "news5"
title = "my 5-topic news features"
dataset = "npz"
model = "mlp"
root = "{data}"
model_options = {{ hidden = 32, depth = 1 }}

[[losses]]
key = "ce"
label = "Cross-entropy"

[[losses]]
key = "dfl"
loss = "dual_focal"
label = "Dual focal"
tune_gamma = true
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``study.toml`` beside ``news5.npz`` (5 topics of the packaged 20 Newsgroups embeddings,
    referenced by a path relative to the study file)."""
    folder = tmp_path_factory.mktemp("study")
    with np.load(DEMO_DATA, allow_pickle=False) as d:
        data = {k: d[k] for k in d.files}
    arrays = {}
    for split, n in (("train", 80), ("test", 40)):
        idx = np.concatenate([np.flatnonzero(data[f"y_{split}"] == c)[:n] for c in range(5)])
        arrays[f"x_{split}"], arrays[f"y_{split}"] = (
            data[f"x_{split}"][idx],
            data[f"y_{split}"][idx],
        )
    np.savez(folder / "news5.npz", **arrays, class_names=data["class_names"][:5])
    (folder / "study.toml").write_text(STUDY.format(data="news5.npz"))
    return folder / "study.toml"


def _kill_after_first_run(study: Path, out: Path) -> None:
    """Run the study in a real process and SIGKILL it once its first suite run has finished."""
    code = f"from focalcal.training import reproduce; reproduce({str(study)!r}, {str(out)!r})"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while not list((out / "runs").glob("*/*/*/status.json")):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no run finished within 240 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, "the study ended before it could be interrupted"


def test_study_interrupted_then_rerun_skips_finished_runs(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _kill_after_first_run(study, out)
    finished = sorted(p.parent for p in (out / "runs").glob("*/*/*/status.json"))
    stamps = {p: (p / "checkpoints" / "last.ckpt").stat().st_mtime_ns for p in finished}
    assert 1 <= len(finished) < 4 and not (out / "results.json").exists()

    reproduce(study, out, echo=lambda _: None)
    results = json.loads((out / "results.json").read_text())
    actions = results["invocation"]["actions"]
    assert actions["skipped"] >= len(finished) and sum(actions.values()) == 4
    for run, stamp in stamps.items():  # the finished runs were not trained again
        assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp

    # γ: the candidate with the lowest validation ECE, on the 2-point grid, 2 epochs
    record = json.loads((out / "tune-gamma" / "news5" / "dfl.json").read_text())
    eces = []
    for g in (2.0, 5.0):
        with np.load(out / "tune-gamma" / "news5" / "dfl" / f"g{g:g}" / "logits.npz") as a:
            eces.append(loop_ece(a["val_logits"], a["val_labels"]))
    assert record["val_ece"] == pytest.approx(eces, abs=1e-5)
    assert record["gamma"] == (2.0, 5.0)[int(np.argmin(eces))] and record["epochs"] == 2

    (ds,) = results["datasets"]
    assert [r["loss"] for r in ds["rows"]] == ["ce", "dfl"] and ds["epochs"] == 2
    for row in ds["rows"]:
        assert row["seeds"] == [1, 2]
    dfl_config = json.loads((out / "runs" / "news5" / "dfl" / "seed2" / "config.json").read_text())
    assert dfl_config["loss"] == "dual_focal" and dfl_config["gamma"] == record["gamma"]
    assert dfl_config["data_root"] == str(study.parent / "news5.npz")
    assert f"| Dual focal (γ={record['gamma']:g}) |" in (out / "results.md").read_text()


def test_tune_gamma_on_train_options(study: Path, tmp_path: Path) -> None:
    config = make_config(
        "npz", "mlp", "dual_focal", preset="cpu", data_root=str(study.parent / "news5.npz"),
        model_options={"hidden": 32, "depth": 1}, batch_size=64, milestones=[1],
    )  # fmt: skip
    lines: list[str] = []
    chosen = tune_gamma(config, tmp_path, grid=[1.0, 3.0], epochs=1, echo=lines.append)
    (record,) = chosen.values()
    assert record["grid"] == [1.0, 3.0] and record["gamma"] in (1.0, 3.0)
    assert (
        "γ=1: " in lines[-1]
        and "γ=3: " in lines[-1]
        and lines[-1].endswith(f"→ γ={record['gamma']:g}")
    )
    saved = json.loads(next(tmp_path.rglob("g3/config.json")).read_text())
    assert saved["epochs"] == 1 and saved["gamma"] == 3.0 and saved["model_options"]["hidden"] == 32


TUNED_STUDY = """
name = "my-news-tuned"
seeds = 1
gamma_grid = [2.0]
n_bootstrap = 10
recipe = {{ epochs = 1, batch_size = 64 }}

[[datasets]]
key = "news5"
dataset = "npz"
model = "mlp"
root = "{data}"
model_options = {{ hidden = 32, depth = 1 }}

[[losses]]
key = "mbls"
label = "MbLS"
options = {{ alpha = 0.1 }}
tune = {{ option = "margin", grid = [{grid}] }}

[[losses]]
key = "dfl"
loss = "dual_focal"
label = "Dual focal"
tune_gamma = true
"""


def test_study_tunes_mbls_margin_on_validation(study: Path, tmp_path: Path) -> None:
    """A non-γ option searched end to end: the record, the candidates' folders, the suite run's
    config, the report, and a re-run that trains no candidate again."""
    grid = (10.0, 0.5)  # kept in the given order; the first wins ties
    path = tmp_path / "tuned.toml"
    path.write_text(TUNED_STUDY.format(data=study.parent / "news5.npz", grid="10.0, 0.5"))
    out = tmp_path / "out"
    lines: list[str] = []
    reproduce(path, out, echo=lines.append)

    search = out / "tune-gamma" / "news5"
    record = json.loads((search / "mbls.json").read_text())
    eces = []
    for m in grid:
        with np.load(search / "mbls" / f"margin={m:g}" / "logits.npz") as a:
            eces.append(loop_ece(a["val_logits"], a["val_labels"]))
        saved = json.loads((search / "mbls" / f"margin={m:g}" / "config.json").read_text())
        assert saved["loss_options"] == {"alpha": 0.1, "margin": m} and saved["seed"] == 1
    assert record["option"] == "margin" and record["grid"] == list(grid)
    assert record["val_ece"] == pytest.approx(eces, abs=1e-5)
    assert record["value"] == grid[int(np.argmin(eces))] and "gamma" not in record
    final = json.loads((out / "runs" / "news5" / "mbls" / "seed1" / "config.json").read_text())
    assert final["loss_options"] == {"alpha": 0.1, "margin": record["value"]}
    assert final["gamma"] is None

    # the γ search of the same study keeps its historical layout and record keys
    dfl = json.loads((search / "dfl.json").read_text())
    assert (dfl["option"], dfl["value"], dfl["gamma"]) == ("gamma", 2.0, 2.0)
    assert (search / "dfl" / "g2" / "logits.npz").is_file()
    assert sorted(p.name for p in (search / "dfl").iterdir()) == ["g2"]

    report = (out / "results.md").read_text()
    assert f"| MbLS (margin={record['value']:g}) |" in report and "| Dual focal (γ=2) |" in report
    best = f"**margin={record['value']:g}: {100 * min(eces):.2f}%**"
    assert "margin search for `mbls`" in report and best in report, report
    assert any(ln.endswith(f"→ margin={record['value']:g}") for ln in lines), lines

    # a second search reuses every finished candidate and chooses the same value
    stamps = {p: p.stat().st_mtime_ns for p in search.glob("*/*/checkpoints/last.ckpt")}
    assert len(stamps) == 3
    again = tune_losses(path, out, echo=lambda _: None)
    assert again[("news5", "mbls")] == record
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
