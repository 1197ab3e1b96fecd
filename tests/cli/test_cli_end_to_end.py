"""train → evaluate → compare on small real data, checked against independent computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_auc_score

from focalcal.cli import main

ROWS = ("Error (%)", "NLL", "ECE (%)", "AdaECE (%)", "CW-ECE (%)", "smECE (%)")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64) - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _ece_loop(logits: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE with (lo, hi] bins, written as the papers' loop."""
    p = _softmax(logits)
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(
                conf[inside].mean() - (pred[inside] == labels[inside]).mean()
            )
    return total


def _entropy(logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    p = _softmax(logits / t)
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(1)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_features, train_args) -> tuple[Path, Path]:
    """A CE run and a DFL run (in-process CLI), each evaluated with an OOD set."""
    root = tmp_path_factory.mktemp("runs")
    extra = [
        "--ood",
        f"npz:{tiny_features['ood']}",
        "--n-bootstrap",
        "100",
        "--ts-criterion",
        "nll",
    ]
    runs = (root / "ce", root / "dfl")
    assert main(train_args(tiny_features["ind"], runs[0], "ce", *extra)) == 0
    assert (
        main(train_args(tiny_features["ind"], runs[1], "dual_focal", "--gamma", "3", *extra)) == 0
    )
    return runs


def test_train_writes_the_run_folder(two_runs):
    run = two_runs[0]
    for name in ("config.json", "status.json", "logits.npz", "metrics.json", "report.md",
                 "checkpoints/last.ckpt", "logs/metrics.csv", "reliability_pre.png",
                 "reliability_post.png"):  # fmt: skip
        assert (run / name).is_file(), name
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["focalcal_config"]["loss"] == "ce"
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "cpu" and config["epochs"] == 4 and config["grad_clip"] == 2.0
    csv = (run / "logs" / "metrics.csv").read_text().splitlines()
    assert {"train_loss", "val_ece", "val_error"} <= set(csv[0].split(","))
    assert len(csv) == 1 + 4  # one row per epoch
    from PIL import Image

    with Image.open(run / "reliability_post.png") as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_evaluation_matches_independent_computations(two_runs):
    run = two_runs[0]
    result = json.loads((run / "metrics.json").read_text())
    with np.load(run / "logits.npz") as d:
        val, val_y = d["val_logits"].astype(np.float64), d["val_labels"]
        test, test_y = d["test_logits"].astype(np.float64), d["test_labels"]
        ood = d["ood__news_other_logits"].astype(np.float64)
    assert (len(val_y), len(test_y), len(ood)) == (40, 200, 100)

    # T minimises the validation NLL (criterion nll): scipy on log T, independently.
    def val_nll(log_t: float) -> float:
        p = _softmax(val / np.exp(log_t))
        return -np.log(p[np.arange(len(val_y)), val_y]).mean()

    t_ref = float(np.exp(minimize_scalar(val_nll, bounds=(-4, 4), method="bounded",
                                         options={"xatol": 1e-10}).x))  # fmt: skip
    t = result["temperature"]
    assert t == pytest.approx(t_ref, rel=1e-4)
    pre, post = result["test"]["pre"], result["test"]["post"]
    assert pre["error"]["value"] == pytest.approx((test.argmax(1) != test_y).mean())
    assert post["error"]["value"] == pre["error"]["value"]  # T > 0 keeps the argmax
    assert pre["ece"]["value"] == pytest.approx(_ece_loop(test, test_y), rel=1e-6)
    assert post["ece"]["value"] == pytest.approx(_ece_loop(test / t, test_y), rel=1e-6)
    p_post = _softmax(test / t)
    nll_post = -np.log(p_post[np.arange(len(test_y)), test_y]).mean()
    assert post["nll"]["value"] == pytest.approx(nll_post, rel=1e-6)
    for stage in (pre, post):
        for key, entry in stage.items():
            if key == "smooth_ece":
                assert "ci95" not in entry
                continue
            lo, hi = entry["ci95"]
            assert lo <= hi, key
    # OOD = the ten unseen newsgroups; AUROC (OOD positive) against scikit-learn on float64
    # scores (focalcal scores the float32 logits: a few near-tied pairs may order differently).
    scores = result["ood"]["news_other"]
    y_ood = np.r_[np.zeros(len(test)), np.ones(len(ood))]
    for stage, temp in (("pre", 1.0), ("post", t)):
        ent = np.r_[_entropy(test, temp), _entropy(ood, temp)]
        assert scores[stage]["auroc_entropy"] == pytest.approx(roc_auc_score(y_ood, ent), abs=2e-4)
        msp = np.r_[_softmax(test / temp).max(1), _softmax(ood / temp).max(1)]
        assert scores[stage]["auroc_msp"] == pytest.approx(roc_auc_score(y_ood, -msp), abs=2e-4)
    report = (run / "report.md").read_text()
    for label in ROWS:
        assert f"| {label} |" in report and f"{label} pre / post (T)" in report
    assert f"({t:.2f})" in report and "news_other" in report


def test_compare_table_has_every_column_and_p_values(two_runs, tmp_path, capsys):
    assert main(["compare", *map(str, two_runs), "--out", str(tmp_path), "--n-bootstrap", "100",
                 "--ts-criterion", "nll", "--diagrams"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    table = (tmp_path / "compare.md").read_text()
    assert table.strip() in printed
    header = table.splitlines()[0]
    for column in ("Error (%)", "NLL", "ECE (%) pre / post (T)", "AdaECE", "CW-ECE", "smECE",
                   "p (ECE < ce)"):  # fmt: skip
        assert column in header
    rows = json.loads((tmp_path / "compare.json").read_text())["rows"]
    assert [r["loss"] for r in rows] == ["ce", "dual_focal"]
    assert "p_vs_baseline" not in rows[0]
    assert 0 < rows[1]["p_vs_baseline"]["pre"] <= 1
    assert "dual_focal (γ=3)" in table and "news_other" in table
    assert (tmp_path / "reliability_overlay_pre.png").is_file()
    assert (tmp_path / "reliability_overlay_post.png").is_file()


def test_compare_groups_seeds_unless_per_run(two_runs, capsys):
    common = ["compare", *map(str, two_runs), "--n-bootstrap", "50", "--ts-criterion", "nll"]
    assert main(common) == 0
    grouped = capsys.readouterr().out.splitlines()
    assert grouped[0].startswith("| group | n_seeds |")
    assert any(line.startswith("| ") and "| 1 |" in line for line in grouped[2:4])
    assert any(line.startswith("Estimates: plug-in binned metrics") for line in grouped)
    assert main([*common, "--per-run"]) == 0
    per_run = capsys.readouterr().out.splitlines()
    assert per_run[0].startswith("| run |") and "n_seeds" not in per_run[0]


def test_compare_refuses_runs_on_different_test_sets(two_runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "metrics.json"):
        (other / name).write_bytes((two_runs[0] / name).read_bytes())
    with np.load(two_runs[0] / "logits.npz") as d:
        arrays = {k: d[k] for k in d.files}
    arrays["test_labels"] = np.roll(arrays["test_labels"], 1)
    np.savez(other / "logits.npz", **arrays)
    assert main(["compare", str(two_runs[0]), str(other), "--n-bootstrap", "100",
                 "--ts-criterion", "nll"]) == 2  # fmt: skip


def test_cifar10_jpeg_images_end_to_end(tmp_path, shared_data):
    """A few real CIFAR-10 JPEGs (class-per-folder) through train + evaluate with a CNN."""
    source = shared_data / "cifar10-jpeg"
    if not source.is_dir():
        pytest.skip("CIFAR-10 JPEG copy not in ../shared/data")
    tree = tmp_path / "cifar"
    for split, per_class in (("train", 12), ("test", 6)):
        for cls in sorted(p.name for p in (source / split).iterdir()):
            (tree / split / cls).mkdir(parents=True)
            for image in sorted((source / split / cls).iterdir())[:per_class]:
                (tree / split / cls / image.name).symlink_to(image)
    run = tmp_path / "run"
    args = ["train", "--dataset", "imagefolder", "--data-root", str(tree), "--dataset-option",
            "cache=false", "--model", "resnet8", "--loss", "flsd53", "--preset", "cpu", "--epochs",
            "1", "--batch-size", "32", "--no-progress", "--out", str(run), "--n-bootstrap", "20"]  # fmt: skip
    assert main(args) == 0
    result = json.loads((run / "metrics.json").read_text())
    assert result["n_test"] == 60 and result["n_val"] == 12
    assert set(result["test"]["pre"]) == {
        "error",
        "nll",
        "ece",
        "adaece",
        "classwise_ece",
        "smooth_ece",
    }
    assert 0 <= result["test"]["pre"]["ece"]["value"] <= 1


def test_evaluate_adds_ood_sets_from_the_checkpoint(two_runs, tmp_path, tiny_features):
    run = two_runs[1]
    out = tmp_path / "eval"
    args = ["evaluate", str(run), "--out", str(out), "--n-bootstrap", "0", "--ts-criterion", "nll",
            "--no-diagrams", "--ood", f"npz:{tiny_features['ood']}"]  # fmt: skip
    assert main(args) == 0
    fresh = json.loads((out / "metrics.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    # OOD logits recomputed from the checkpoint give the AUROCs computed after training.
    assert fresh["ood"]["news_other"] == trained["ood"]["news_other"]
    assert fresh["temperature"] == trained["temperature"]
    assert "ci95" not in fresh["test"]["pre"]["ece"]  # --n-bootstrap 0
    assert not (out / "reliability_pre.png").exists()


def test_mixed_precision_training_on_cpu(tmp_path, tiny_features, train_args):
    run = tmp_path / "bf16"
    args = train_args(tiny_features["ind"], run, "flsd53", "--epochs", "1", "--precision",
                      "bf16-mixed", "--n-bootstrap", "0", "--train-size", "40")  # fmt: skip
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["precision"] == "bf16-mixed" and config["train_size"] == 40
    with np.load(run / "logits.npz") as d:
        assert d["test_logits"].dtype == np.float32 and np.isfinite(d["test_logits"]).all()
