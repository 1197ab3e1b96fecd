"""Aggregation of a suite's runs: mean ± std over seeds and seed-averaged bootstrap intervals.

Per (dataset, loss), every metric of the runs' ``metrics.json`` is summarised as

.. math::

    \\bar m = \\frac1S \\sum_{s=1}^S m_s, \\qquad
    \\mathrm{sd} = \\sqrt{\\tfrac{1}{S-1} \\textstyle\\sum_s (m_s - \\bar m)^2}

(no spread for one seed). The 95% interval of :math:`\\bar m` resamples the test items with
the same bootstrap indices for every seed (the runs share one test set), averages the resampled
values over seeds, and forms the default interval of :func:`focalcal.metrics.bootstrap_interval`
(basic bootstrap around :math:`\\bar m`) from them.

Example (with finished, evaluated runs of the CI suite):

    >>> from focalcal.training.aggregate import aggregate
    >>> results = aggregate(suite, specs, n_bootstrap=200, out_dir="reproduce-ci")  # doctest: +SKIP
    >>> results["datasets"][0]["rows"][0]["test"]["pre"]["ece"]["mean"]  # doctest: +SKIP
    0.0412
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import metrics
from ..metrics.bootstrap import bootstrap_interval
from .evaluate import METRIC_LABELS, METRICS_FILE, load_logits
from .run import STATUS_FILE
from .suites import LossSpec, RunSpec, Suite

__all__ = [
    "INTERVAL_METRICS",
    "OVERLAY_LOSSES",
    "aggregate",
    "mean_std",
    "overlay_diagrams",
    "seed_mean_interval",
    "seed_mean_samples",
    "summarize",
]

#: Metrics given a seed-averaged bootstrap interval (vectorised in :func:`metrics.bootstrap_ci`).
INTERVAL_METRICS = ("error", "ece", "adaece", "classwise_ece")
#: Losses overlaid in the reliability diagrams (the papers' headline comparison).
OVERLAY_LOSSES = ("ce", "brier", "flsd53", "dual_focal")


def mean_std(values: list[float]) -> dict[str, Any]:
    """``{"mean", "std" (None for one value), "values"}`` of ``values`` (std with ddof=1)."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else None
    return {"mean": float(arr.mean()), "std": std, "values": [float(v) for v in arr]}


def seed_mean_samples(
    runs: list[tuple[dict[str, Any], dict[str, torch.Tensor]]],
    metric: str,
    stage: str,
    n_bootstrap: int,
    n_bins: int,
    seed: int = 0,
) -> torch.Tensor:
    """``(n_bootstrap,)`` bootstrap values of the seed-averaged ``metric``: every run's test
    logits (``runs`` = ``(metrics.json, logits.npz)`` pairs on one test set) are resampled with
    the same indices (same ``seed``, same N), and the resampled values averaged over runs."""
    samples = []
    for result, logits in runs:
        t = result["temperature"] if stage == "post" else 1.0
        kwargs = {} if metric == "error" else {"n_bins": n_bins}
        res = metrics.bootstrap_ci(
            metric,
            logits["test_logits"] / t,
            logits["test_labels"],
            n_resamples=n_bootstrap,
            seed=seed,
            from_logits=True,
            **kwargs,
        )
        samples.append(res.samples.to(torch.float64))
    return torch.stack(samples).mean(0)


def seed_mean_interval(
    runs: list[tuple[dict[str, Any], dict[str, torch.Tensor]]],
    metric: str,
    stage: str,
    n_bootstrap: int,
    n_bins: int,
    seed: int = 0,
) -> list[float]:
    """95% interval of the seed-averaged ``metric`` (:func:`seed_mean_samples`), the default
    method of :func:`focalcal.metrics.bootstrap_interval` around the mean of the runs' values."""
    samples = seed_mean_samples(runs, metric, stage, n_bootstrap, n_bins, seed)
    estimate = sum(r["test"][stage][metric]["value"] for r, _ in runs) / len(runs)
    _, low, high = bootstrap_interval(samples, estimate, level=0.95)
    return [low, high]


def summarize(
    runs: list[tuple[dict[str, Any], dict[str, torch.Tensor]]], n_bootstrap: int, seed: int = 0
) -> dict[str, Any]:
    """``{"temperature", "test", "ood"}`` of runs of one recipe over seeds: mean ± std of every
    metric pre/post T, seed-averaged intervals (when ``n_bootstrap``), OOD AUROC."""
    results = [r for r, _ in runs]
    n_bins = results[0]["n_bins"]
    summary: dict[str, Any] = {
        "temperature": mean_std([r["temperature"] for r in results]),
        "test": {},
        "ood": {},
    }
    for stage in ("pre", "post"):
        summary["test"][stage] = {
            key: mean_std([r["test"][stage][key]["value"] for r in results])
            for key in METRIC_LABELS
        }
        for key in INTERVAL_METRICS if n_bootstrap else ():
            summary["test"][stage][key]["ci95"] = seed_mean_interval(
                runs, key, stage, n_bootstrap, n_bins, seed
            )
    for name in results[0].get("ood", {}):
        summary["ood"][name] = {
            stage: {
                score: mean_std([r["ood"][name][stage][score] for r in results])
                for score in ("auroc_entropy", "auroc_msp")
            }
            for stage in ("pre", "post")
        }
    return summary


def _read_metrics(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / METRICS_FILE).read_text())


def _loss_row(
    loss: LossSpec, specs: list[RunSpec], n_bootstrap: int, out_dir: str | Path
) -> dict[str, Any]:
    """The summary of one loss over its seeds (``specs``, all of one dataset)."""
    runs = [(_read_metrics(s.run_dir), load_logits(s.run_dir)) for s in specs]
    summary = summarize(runs, n_bootstrap)
    return {
        "loss": loss.key,
        "label": loss.label,
        "gamma": runs[0][0].get("gamma"),
        "tuned": loss.tuned,
        "tune_option": loss.tune_option,
        "tune_value": _tuned_value(loss, runs[0][0], specs[0]),
        "seeds": [s.seed for s in specs],
        "runs": [_relative(s.run_dir, out_dir) for s in specs],
        "temperature": summary["temperature"],
        "train_seconds": sum(_train_seconds(s) for s in specs),
        "test": summary["test"],
        "ood": summary["ood"],
    }


def _tuned_value(loss: LossSpec, saved: dict[str, Any], spec: RunSpec) -> float | None:
    """The value the runs of a tuned loss used for its tuned option (``None``: not tuned, or
    left at the loss's default)."""
    if loss.tune_option == "gamma":
        return saved.get("gamma")
    if loss.tune_option is None:
        return None
    return spec.config.get("loss_options", {}).get(loss.tune_option)


def aggregate(
    suite: Suite,
    specs: list[RunSpec],
    *,
    n_bootstrap: int,
    out_dir: str | Path,
    tuning: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per dataset and loss: mean ± std over seeds of every metric pre/post T, seed-averaged
    bootstrap intervals, OOD AUROC, T and training time (from the runs' ``metrics.json``).
    Run folders are recorded relative to ``out_dir`` (the suite folder can be moved)."""
    tuning = tuning or {}
    out: dict[str, Any] = {
        "suite": suite.name,
        "description": suite.description,
        "n_bootstrap": n_bootstrap,
        "datasets": [],
    }
    for ds in suite.datasets:
        rows = []
        for loss in suite.losses:
            mine = [s for s in specs if s.dataset_key == ds.key and s.loss_key == loss.key]
            if mine:
                rows.append(_loss_row(loss, mine, n_bootstrap, out_dir))
        first = next(s for s in specs if s.dataset_key == ds.key)
        out["datasets"].append(
            {
                "key": ds.key,
                "title": ds.title,
                "data_root": first.config["data_root"],
                "epochs": first.config["epochs"],
                "n_test": _read_metrics(first.run_dir)["n_test"],
                "n_bins": _read_metrics(first.run_dir)["n_bins"],
                "rows": rows,
                "tuning": [rec for (d, _), rec in tuning.items() if d == ds.key],
            }
        )
    return out


def _relative(path: str | Path, base: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def _train_seconds(spec: RunSpec) -> float:
    path = Path(spec.run_dir) / STATUS_FILE
    return float(json.loads(path.read_text()).get("train_seconds", 0.0)) if path.is_file() else 0.0


def overlay_diagrams(out: Path, results: dict[str, Any]) -> dict[str, list[str]]:
    """Reliability diagrams of the headline losses (:data:`OVERLAY_LOSSES`, else every loss)
    overlaid (seed 1), pre-T and post-T, per dataset; ``{dataset_key: [file names]}``."""
    try:
        from ..plots import save_reliability_diagram
    except ImportError:
        return {}
    made: dict[str, list[str]] = {}
    for ds in results["datasets"]:
        headline = [r for r in ds["rows"] if r["loss"] in OVERLAY_LOSSES]
        shown = headline if len(headline) > 1 else ds["rows"]
        n_bins = _read_metrics(out / ds["rows"][0]["runs"][0])["n_bins"]
        names = []
        for stage in ("pre", "post"):
            probs, labels = {}, None
            for row in shown:
                run_dir = out / row["runs"][0]
                logits = load_logits(run_dir)
                t = _read_metrics(run_dir)["temperature"] if stage == "post" else 1.0
                probs[row["label"]] = (logits["test_logits"] / t).softmax(1)
                labels = logits["test_labels"]
            name = f"reliability_{ds['key']}_{stage}.png"
            save_reliability_diagram(
                out / name,
                probs,
                labels,
                n_bins=n_bins,
                show_gap=False,
                figsize=(6.0, 6.0),
                title=f"{ds['key']}: {stage}-T (seed 1)",
            )
            names.append(name)
        made[ds["key"]] = names
    return made
