"""``compare_runs`` groups runs by (dataset, model, loss, γ): mean ± std over seeds, n_seeds,
seed-averaged intervals and p-values against the baseline group.

The runs are real run folders (config.json, logits.npz) evaluated by ``evaluate_run``; expected
values come from numpy and from focalcal.metrics' public bootstrap functions.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from focalcal import metrics
from focalcal._io import atomic_save_npz
from focalcal.training import compare_runs, evaluate_run, make_config, save_config

N_TEST, C = 300, 4


def fake_run(run_dir: Path, loss: str, seed: int, sharpness: float, gamma=None, shift=0) -> Path:
    """A finished run: its config and the logits of a noisy over-confident classifier."""
    rng = np.random.default_rng(seed + int(100 * sharpness))
    arrays = {}
    for split in ("val", "test"):
        labels = (np.arange(N_TEST) + (shift if split == "test" else 0)) % C
        logits = rng.normal(size=(N_TEST, C))
        logits[np.arange(N_TEST), labels] += 1.5
        arrays[f"{split}_logits"] = (sharpness * logits).astype(np.float32)
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    run_dir.mkdir(parents=True)
    config = make_config("npz", "mlp", loss, preset="cpu", seed=seed, gamma=gamma)
    save_config(config, run_dir / "config.json")
    atomic_save_npz(run_dir / "logits.npz", **arrays)
    evaluate_run(run_dir, n_bootstrap=0, diagrams=False)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    ce = [fake_run(root / f"ce{s}", "ce", s, 3.0 + s) for s in (1, 2, 3)]
    dfl = [fake_run(root / f"dfl{s}", "dual_focal", s, 1.0 + 0.2 * s, gamma=5.0) for s in (1, 2)]
    return [ce[0], dfl[0], ce[1], dfl[1], ce[2]]  # interleaved: grouping is by recipe, not order


def test_groups_have_mean_std_and_n_seeds(runs: list[Path], tmp_path: Path) -> None:
    out = compare_runs(runs, n_bootstrap=0, out_dir=tmp_path)
    groups = {g["label"]: g for g in out["groups"]}
    assert list(groups) == ["ce", "dual_focal (γ=5)"]
    assert [groups["ce"]["n_seeds"], groups["dual_focal (γ=5)"]["n_seeds"]] == [3, 2]
    for group in groups.values():
        per_run = [json.loads((Path(r) / "metrics.json").read_text()) for r in group["runs"]]
        for stage in ("pre", "post"):
            for key in ("error", "nll", "ece", "adaece", "classwise_ece", "smooth_ece"):
                values = [r["test"][stage][key]["value"] for r in per_run]
                assert group["test"][stage][key]["mean"] == pytest.approx(np.mean(values))
                assert group["test"][stage][key]["std"] == pytest.approx(np.std(values, ddof=1))
    table = (tmp_path / "compare.md").read_text()
    header, _, *lines = table.strip().splitlines()
    assert "n_seeds" in header and len(lines) == 2
    ece = groups["ce"]["test"]["pre"]["ece"]
    assert "| ce | 3 | " in table and f"{100 * ece['mean']:.2f} ± {100 * ece['std']:.2f}" in table
    assert len(out["rows"]) == 5  # the per-run rows are kept in the result


def test_per_run_keeps_one_row_per_run(runs: list[Path]) -> None:
    out = compare_runs(runs, n_bootstrap=0, per_run=True)
    header, _, *lines = out["markdown"].strip().splitlines()
    assert "n_seeds" not in header and len(lines) == 5
    assert [line.split(" | ")[0] for line in lines] == [
        "| ce", "| dual_focal (γ=5)", "| ce", "| dual_focal (γ=5)", "| ce",
    ]  # fmt: skip


def _tensors(run: Path) -> tuple[torch.Tensor, torch.Tensor, float]:
    with np.load(run / "logits.npz") as d:
        logits, labels = torch.from_numpy(d["test_logits"]), torch.from_numpy(d["test_labels"])
    return logits, labels, json.loads((run / "metrics.json").read_text())["temperature"]


def test_single_run_groups_match_the_paired_bootstrap(runs: list[Path]) -> None:
    ce, dfl = runs[0], runs[1]
    out = compare_runs([ce, dfl], n_bootstrap=300, seed=4)
    group = out["groups"][1]
    (ce_z, y, ce_t), (dfl_z, _, dfl_t) = _tensors(ce), _tensors(dfl)
    for stage, (a, b) in {"pre": (dfl_z, ce_z), "post": (dfl_z / dfl_t, ce_z / ce_t)}.items():
        ref = metrics.paired_bootstrap("ece", a, b, y, n_resamples=300, seed=4, from_logits=True)
        assert group["p_vs_baseline"][stage] == pytest.approx(ref.p_value, abs=1e-12)
        single = metrics.bootstrap_ci("ece", a, y, n_resamples=300, seed=4, from_logits=True)
        assert group["test"][stage]["ece"]["ci95"] == pytest.approx([single.low, single.high])
    assert "p_vs_baseline" not in out["groups"][0]


def test_seed_averaged_interval_of_identical_seeds_is_the_single_interval(
    runs: list[Path], tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    for name in ("config.json", "logits.npz", "metrics.json"):
        (twin / name).write_bytes((runs[0] / name).read_bytes())
    both = compare_runs([runs[0], twin], n_bootstrap=200)["groups"][0]
    alone = compare_runs([runs[0]], n_bootstrap=200)["groups"][0]
    assert both["n_seeds"] == 2 and both["test"]["pre"]["ece"]["std"] == 0.0
    assert both["test"]["pre"]["ece"]["ci95"] == pytest.approx(alone["test"]["pre"]["ece"]["ci95"])


def test_runs_of_different_test_sets_are_refused_naming_them(runs: list[Path], tmp_path) -> None:
    other = fake_run(tmp_path / "other", "ce", 9, 2.0, shift=1)
    with pytest.raises(ValueError, match="tested on other samples") as err:
        compare_runs([runs[0], runs[1], other], n_bootstrap=0)
    assert str(other) in str(err.value) and str(runs[1]) not in str(err.value).split(" were ")[0]
