"""The miniature suite end to end: γ search, training through ``train``, evaluation, the report,
and the skip-finished / resume / config-mismatch behaviour of a second invocation.

Reference values are recomputed here from the saved logits with a direct loop over bins, not
with focalcal's metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightning")

from focalcal.cli import main
from focalcal.training.suites import get_suite


def loop_ece(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """15-bin ECE by a plain loop: (lo, hi] bins, confidence 0 in the first bin."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [i for i in range(len(conf)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] <= lo)]
        if inside:
            acc = np.mean([pred[i] == labels[i] for i in inside])
            total += len(inside) / len(conf) * abs(np.mean(conf[inside]) - acc)
    return float(total)


def load(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(run_dir / "logits.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def ci_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ci-suite")
    assert main(["reproduce", "--suite", "ci", "--out", str(out)]) == 0
    return out


def test_report_files_and_tables(ci_out: Path) -> None:
    md = (ci_out / "results.md").read_text()
    results = json.loads((ci_out / "results.json").read_text())
    assert "| Cross-entropy |" in md and "| Dual focal (γ=" in md
    assert "ECE (%) pre / post (T)" in md and "95% bootstrap intervals" in md
    assert results["invocation"]["actions"] == {"trained": 2, "resumed": 0, "skipped": 0}
    assert results["invocation"]["command"] == f"focalcal reproduce --suite ci --out {ci_out}"
    (ds,) = results["datasets"]
    assert [row["loss"] for row in ds["rows"]] == ["ce", "dual_focal"]
    assert ds["epochs"] == 3


def test_table_values_match_direct_computation(ci_out: Path) -> None:
    results = json.loads((ci_out / "results.json").read_text())
    for row in results["datasets"][0]["rows"]:
        (run,) = row["runs"]
        assert run == "runs/20ng-subset/" + row["loss"] + "/seed1"  # relative to the suite folder
        arrays = load(ci_out / run)
        t = json.loads((ci_out / run / "metrics.json").read_text())["temperature"]
        logits, labels = arrays["test_logits"], arrays["test_labels"]
        pre, post = row["test"]["pre"], row["test"]["post"]
        assert pre["ece"]["mean"] == pytest.approx(loop_ece(logits, labels), abs=1e-5)
        assert post["ece"]["mean"] == pytest.approx(loop_ece(logits / t, labels), abs=1e-5)
        err = float(np.mean(logits.argmax(1) != labels))
        assert pre["error"]["mean"] == pytest.approx(err, abs=1e-9)
        assert post["error"]["mean"] == pytest.approx(err, abs=1e-9)  # T keeps the argmax
        assert pre["ece"]["std"] is None  # one seed: no spread is claimed
        lo, hi = pre["ece"]["ci95"]
        assert lo <= hi and lo - 0.02 <= pre["ece"]["mean"] <= hi + 0.02
        assert row["temperature"]["mean"] == pytest.approx(t)


def test_gamma_search_picks_lowest_validation_ece(ci_out: Path) -> None:
    record = json.loads((ci_out / "tune-gamma" / "20ng-subset" / "dual_focal.json").read_text())
    suite = get_suite("ci")
    assert record["grid"] == list(suite.gamma_grid)
    eces = []
    for g in record["grid"]:
        cand = ci_out / "tune-gamma" / "20ng-subset" / "dual_focal" / f"g{g:g}"
        config = json.loads((cand / "config.json").read_text())
        assert config["gamma"] == g and config["epochs"] == suite.tune_epochs
        arrays = load(cand)
        eces.append(loop_ece(arrays["val_logits"], arrays["val_labels"]))
    assert record["val_ece"] == pytest.approx(eces, abs=1e-5)
    assert record["gamma"] == record["grid"][int(np.argmin(eces))]
    # the suite's DFL runs use the chosen γ, through the same config as `focalcal train`
    main_cfg = json.loads(
        (ci_out / "runs" / "20ng-subset" / "dual_focal" / "seed1" / "config.json").read_text()
    )
    assert main_cfg["gamma"] == record["gamma"] and main_cfg["loss"] == "dual_focal"


def test_second_invocation_skips_resumes_and_refuses_mismatch(
    ci_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = ci_out / "runs" / "20ng-subset"
    ckpts = sorted(ci_out.rglob("last.ckpt"))
    assert len(ckpts) == 4  # 2 γ candidates + 2 suite runs
    before = {p: p.stat().st_mtime_ns for p in ckpts}

    # 1. everything finished: nothing is trained again, the report is rewritten
    assert main(["reproduce", "--suite", "ci", "--out", str(ci_out)]) == 0
    results = json.loads((ci_out / "results.json").read_text())
    assert results["invocation"]["actions"] == {"trained": 0, "resumed": 0, "skipped": 2}
    assert {p: p.stat().st_mtime_ns for p in ckpts} == before

    # 2. an interrupted run (no status.json yet) is resumed; the finished one is left alone
    (runs / "ce" / "seed1" / "status.json").unlink()
    (runs / "ce" / "seed1" / "metrics.json").unlink()
    assert main(["reproduce", "--suite", "ci", "--out", str(ci_out)]) == 0
    results = json.loads((ci_out / "results.json").read_text())
    assert results["invocation"]["actions"] == {"trained": 0, "resumed": 1, "skipped": 1}
    dfl_ckpt = runs / "dual_focal" / "seed1" / "checkpoints" / "last.ckpt"
    assert dfl_ckpt.stat().st_mtime_ns == before[dfl_ckpt]
    assert (runs / "ce" / "seed1" / "status.json").is_file()

    # 3. another schedule in the same folder is refused, naming the field
    capsys.readouterr()
    code = main(
        ["reproduce", "--suite", "ci", "--out", str(ci_out), "--epochs", "4", "--no-tune-gamma"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "epochs: 3 → 4" in err and "another configuration" in err
    assert math.isfinite(json.loads((ci_out / "results.json").read_text())["n_bootstrap"])
