"""Seed aggregation of the report on synthetic runs (saved logits, real ``evaluate_run``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")

from focalcal import metrics
from focalcal._io import atomic_save_npz
from focalcal.training.config import make_config, save_config
from focalcal.training.evaluate import evaluate_run
from focalcal.training.reproduce import aggregate, format_results
from focalcal.training.suites import RunSpec, get_suite

N_VAL, N_TEST, C = 300, 400, 5


def fake_run(run_dir: Path, seed: int, sharpness: float) -> RunSpec:
    """A finished run folder: config + logits of a noisy over-confident classifier."""
    rng = np.random.default_rng(seed)
    config = make_config("npz", "mlp", "ce", preset="cpu", seed=seed)
    arrays = {}
    for split, n in (("val", N_VAL), ("test", N_TEST)):
        labels = np.arange(n) % C  # the same test labels in every run, as in a suite
        logits = rng.normal(size=(n, C))
        logits[np.arange(n), labels] += 1.0
        arrays[f"{split}_logits"] = (sharpness * logits).astype(np.float32)
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / "config.json")
    atomic_save_npz(run_dir / "logits.npz", **arrays)
    evaluate_run(run_dir, n_bootstrap=0, diagrams=False)
    return RunSpec("20ng-subset", "ce", seed, str(run_dir), config.to_dict())


def test_mean_std_over_seeds_and_seed_averaged_interval(tmp_path: Path) -> None:
    suite = get_suite("ci").select(losses=["ce"])
    specs = [fake_run(tmp_path / f"s{s}", s, 1.0 + s) for s in (1, 2, 3)]
    results = aggregate(suite, specs, n_bootstrap=200, out_dir=tmp_path)
    (row,) = results["datasets"][0]["rows"]
    per_run = [json.loads(Path(s.run_dir, "metrics.json").read_text()) for s in specs]
    for stage in ("pre", "post"):
        for key in ("error", "ece", "adaece", "classwise_ece", "nll"):
            values = [r["test"][stage][key]["value"] for r in per_run]
            stat = row["test"][stage][key]
            assert stat["mean"] == pytest.approx(np.mean(values))
            assert stat["std"] == pytest.approx(np.std(values, ddof=1))
        # error is a mean over items: its percentile interval brackets the estimate (ECE's
        # need not: resampling biases ECE upwards, most visibly when it is near 0)
        lo, hi = row["test"][stage]["error"]["ci95"]
        assert lo < row["test"][stage]["error"]["mean"] < hi
        lo, hi = row["test"][stage]["ece"]["ci95"]
        assert 0 <= lo < hi
    assert row["runs"] == ["s1", "s2", "s3"]
    assert row["temperature"]["mean"] == pytest.approx(np.mean([r["temperature"] for r in per_run]))
    md = format_results(results)
    ece = row["test"]["pre"]["ece"]
    assert f"{100 * ece['mean']:.2f} ± {100 * ece['std']:.2f}" in md


def test_identical_seeds_give_the_single_run_interval(tmp_path: Path) -> None:
    suite = get_suite("ci").select(losses=["ce"])
    one = fake_run(tmp_path / "a", 7, 3.0)
    twin = RunSpec(one.dataset_key, one.loss_key, 2, one.run_dir, one.config)
    results = aggregate(suite, [one, twin], n_bootstrap=300, out_dir=tmp_path)
    stat = results["datasets"][0]["rows"][0]["test"]["pre"]["ece"]
    assert stat["std"] == 0.0
    with np.load(tmp_path / "a" / "logits.npz") as data:
        logits, labels = (
            torch.from_numpy(data["test_logits"]),
            torch.from_numpy(data["test_labels"]),
        )
    single = metrics.bootstrap_ci(
        "ece", logits, labels, n_resamples=300, seed=0, from_logits=True, n_bins=15
    )
    assert stat["ci95"] == pytest.approx([single.low, single.high], abs=1e-9)
