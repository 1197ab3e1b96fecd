"""Evaluate a run the way the papers report it: metrics before and after temperature scaling.

``evaluate_run(RUN)`` reads the run's saved logits (or recomputes them from the checkpoint),
fits the temperature T on the validation split, and reports on the test split

* error, NLL, ECE, AdaECE, Classwise-ECE and smooth ECE, pre-T and post-T, each (but the smooth
  ECE, see :data:`NO_INTERVAL`) with a 95% percentile-bootstrap interval (test samples resampled
  with replacement, :func:`focalcal.metrics.bootstrap_ci`);
* for each OOD set, AUROC of the entropy score and of the max-softmax score (OOD = positive),
  pre-T and post-T;
* reliability diagrams (PNG) pre-T and post-T.

It writes ``metrics.json`` and ``report.md`` (the papers' "pre / post (T)" format), atomically.
All metrics are fractions in ``metrics.json``; tables show percentages (NLL as is).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import metrics
from .._io import atomic_save_npz, atomic_write_text
from .._validation import check_choice, check_int
from ..calibration import TemperatureScaling
from ..metrics import ood
from .config import TrainConfig, load_config
from .run import CONFIG_FILE, LOGITS_FILE, compute_logits, load_model, load_splits

__all__ = [
    "METRIC_LABELS",
    "dataset_label",
    "evaluate_run",
    "fit_temperature",
    "format_report",
    "load_logits",
    "metric_specs",
]

#: Metric key → table header, in the papers' order.
METRIC_LABELS: dict[str, str] = {
    "error": "Error (%)",
    "nll": "NLL",
    "ece": "ECE (%)",
    "adaece": "AdaECE (%)",
    "classwise_ece": "CW-ECE (%)",
    "smooth_ece": "smECE (%)",
}
#: Metrics reported without a bootstrap interval: the smooth ECE's bandwidth search costs about
#: 40 ms per evaluation, i.e. minutes for 1000 resamples, against milliseconds for the others.
NO_INTERVAL = frozenset({"smooth_ece"})
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


def metric_specs(n_bins: int = 15) -> dict[str, tuple[str | Callable[..., Tensor], dict[str, Any]]]:
    """Metric key → ``(metric, kwargs)`` for :func:`focalcal.metrics.bootstrap_ci` (names take
    its vectorised resampling path; the smooth ECE, a callable, gets no interval, see
    :data:`NO_INTERVAL`)."""
    binned = {"n_bins": n_bins}
    return {
        "error": ("error", {}),
        "nll": ("nll", {}),
        "ece": ("ece", binned),
        "adaece": ("adaece", binned),
        "classwise_ece": ("classwise_ece", binned),
        "smooth_ece": (metrics.smooth_ece, {}),
    }


def dataset_label(config: TrainConfig) -> str:
    """``cifar10``; for file-based datasets also the file: ``npz:news.npz``."""
    if config.dataset in ("npz", "imagefolder") and config.data_root:
        return f"{config.dataset}:{Path(config.data_root).name}"
    return config.dataset


def load_logits(run_dir: str | Path) -> dict[str, Tensor]:
    """The arrays of ``RUN/logits.npz`` as tensors (``val_logits``, ``test_labels``, …)."""
    path = Path(run_dir) / LOGITS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {LOGITS_FILE} in {run_dir}: the run has not finished training "
            "(continue it with `focalcal train --resume --out RUN`)"
        )
    with np.load(path, allow_pickle=False) as data:
        return {key: torch.from_numpy(data[key]) for key in data.files}


def fit_temperature(
    val_logits: Tensor, val_labels: Tensor, criterion: str = "ece", n_bins: int = 15
) -> float:
    """T fitted on the validation split: ``"ece"`` = the papers' grid search (0.1 … 10, first
    minimum of the 15-bin ECE); ``"nll"`` = exact minimisation of the validation NLL."""
    check_choice(criterion, "ts_criterion", ("nll", "ece"))
    scaler = TemperatureScaling("grid_ece" if criterion == "ece" else "nll", n_bins=n_bins)
    return float(scaler.fit(val_logits, val_labels).temperature_)


def _with_interval(
    metric: str | Callable[..., Tensor],
    kwargs: dict[str, Any],
    logits: Tensor,
    labels: Tensor,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """``{"value": v, "ci95": [lo, hi]}`` of a metric computed from logits."""
    if n_bootstrap == 0:
        fn = getattr(metrics, metric) if isinstance(metric, str) else metric
        return {"value": float(fn(logits, labels, from_logits=True, **kwargs))}
    res = metrics.bootstrap_ci(
        metric, logits, labels, n_resamples=n_bootstrap, seed=seed, from_logits=True, **kwargs
    )
    return {"value": res.estimate, "ci95": [res.low, res.high]}


def _ood_scores(in_logits: Tensor, out_logits: Tensor, temperature: float) -> dict[str, float]:
    """AUROC of OOD detection (OOD = positive) by entropy and by max-softmax (low = OOD)."""
    ent_in = ood.entropy_score(in_logits, temperature=temperature)
    ent_out = ood.entropy_score(out_logits, temperature=temperature)
    msp_in = ood.max_softmax_score(in_logits, temperature=temperature)
    msp_out = ood.max_softmax_score(out_logits, temperature=temperature)
    return {
        "auroc_entropy": float(ood.ood_auroc(ent_in, ent_out)),
        "auroc_msp": float(ood.ood_auroc(msp_in, msp_out, ood_higher=False)),
    }


def evaluate_run(
    run_dir: str | Path,
    *,
    ts_criterion: str = "ece",
    n_bootstrap: int = 1000,
    seed: int = 0,
    out_dir: str | Path | None = None,
    recompute_logits: bool = False,
    ood: list[str] | None = None,
    ood_options: dict[str, Any] | None = None,
    diagrams: bool = True,
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir``; write ``metrics.json``, ``report.md`` and diagrams to
    ``out_dir`` (default: the run folder). Returns the metrics dictionary.

    ``recompute_logits`` reloads the final checkpoint and recomputes the val/test/OOD logits in
    this process (single device), instead of using the ones saved after training. ``ood``
    (``NAME`` or ``NAME:ROOT`` specs, with ``ood_options``) adds OOD sets after training: their
    logits are computed from the checkpoint and saved with the others in ``out_dir``.
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir / CONFIG_FILE)
    check_choice(ts_criterion, "ts_criterion", ("nll", "ece"))
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", min_value=0)
    out = Path(out_dir) if out_dir is not None else run_dir
    if recompute_logits:
        splits = load_splits(config, with_train=False)
        model, _ = load_model(run_dir, splits.val)
        arrays = compute_logits(model, splits, config)
        atomic_save_npz(out / LOGITS_FILE, **arrays)
        logits = {k: torch.from_numpy(v) for k, v in arrays.items()}
    else:
        logits = load_logits(run_dir)
    if ood:
        extra = dataclasses.replace(config, ood=list(ood), ood_options=dict(ood_options or {}))
        splits = load_splits(extra, with_train=False)
        model, _ = load_model(run_dir, splits.val)
        arrays = compute_logits(model, splits, config)
        logits.update({k: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("ood__")})
        atomic_save_npz(out / LOGITS_FILE, **{k: v.numpy() for k, v in logits.items()})
    temperature = fit_temperature(
        logits["val_logits"], logits["val_labels"], ts_criterion, config.n_bins
    )
    test_logits, test_labels = logits["test_logits"], logits["test_labels"]
    specs = metric_specs(config.n_bins)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "dataset": dataset_label(config),
        "model": config.model,
        "loss": config.loss,
        "gamma": config.gamma,
        "n_bins": config.n_bins,
        "n_val": len(logits["val_labels"]),
        "n_test": len(test_labels),
        "ts_criterion": ts_criterion,
        "temperature": temperature,
        "n_bootstrap": n_bootstrap,
        "test": {},
        "ood": {},
    }
    for stage, t in (("pre", 1.0), ("post", temperature)):
        scaled = test_logits / t
        result["test"][stage] = {
            key: _with_interval(
                metric, kw, scaled, test_labels, 0 if key in NO_INTERVAL else n_bootstrap, seed
            )
            for key, (metric, kw) in specs.items()
        }
        for key in logits:
            if key.startswith("ood__") and key.endswith("_logits"):
                name = key[len("ood__") : -len("_logits")]
                result["ood"].setdefault(name, {})[stage] = _ood_scores(test_logits, logits[key], t)
    if diagrams:
        result["diagrams"] = _save_diagrams(out, test_logits, test_labels, temperature, config)
    atomic_write_text(out / METRICS_FILE, json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / REPORT_FILE, format_report(result))
    return result


def _save_diagrams(
    out: Path, logits: Tensor, labels: Tensor, temperature: float, config: TrainConfig
) -> list[str]:
    from ..plots import save_reliability_diagram

    names = []
    for stage, t in (("pre", 1.0), ("post", temperature)):
        name = f"reliability_{stage}.png"
        title = f"{config.loss} ({dataset_label(config)}, {config.model}) {stage}-T" + (
            f" (T={t:.2f})" if stage == "post" else ""
        )
        save_reliability_diagram(
            out / name, (logits / t).softmax(1), labels, n_bins=config.n_bins, title=title
        )
        names.append(name)
    return names


def _pct(value: float) -> str:
    return "nan" if math.isnan(value) else f"{100 * value:.2f}"


def _cell(entry: dict[str, Any], key: str) -> str:
    scale = (lambda v: f"{v:.3f}") if key == "nll" else _pct
    text = scale(entry["value"])
    if "ci95" in entry:
        lo, hi = entry["ci95"]
        text += f" [{scale(lo)}, {scale(hi)}]"
    return text


def format_report(result: dict[str, Any]) -> str:
    """Markdown report: one papers'-style "pre / post (T)" row, then the detailed table."""
    t = result["temperature"]
    pre, post = result["test"]["pre"], result["test"]["post"]
    lines = [
        f"# {result['loss']} on {result['dataset']} ({result['model']})",
        "",
        f"Test set: {result['n_test']} samples. T = {t:.2f} fitted on the validation split "
        f"({result['n_val']} samples, criterion {result['ts_criterion']}); {result['n_bins']} bins; "
        f"95% bootstrap intervals from {result['n_bootstrap']} resamples.",
        "",
        "| " + " | ".join(METRIC_LABELS[k] + " pre / post (T)" for k in METRIC_LABELS) + " |",
        "|" + "---|" * len(METRIC_LABELS),
    ]
    cells = []
    for key in METRIC_LABELS:
        fmt = (lambda v: f"{v:.3f}") if key == "nll" else _pct
        cells.append(f"{fmt(pre[key]['value'])} / {fmt(post[key]['value'])} ({t:.2f})")
    lines += ["| " + " | ".join(cells) + " |", ""]
    lines += ["| metric | pre-T | post-T |", "|---|---|---|"]
    for key, label in METRIC_LABELS.items():
        lines.append(f"| {label} | {_cell(pre[key], key)} | {_cell(post[key], key)} |")
    if result["ood"]:
        lines += [
            "",
            "| OOD set | AUROC entropy pre / post (%) | AUROC max-softmax pre / post (%) |",
        ]
        lines.append("|---|---|---|")
        for name, scores in result["ood"].items():
            ent = (
                f"{_pct(scores['pre']['auroc_entropy'])} / {_pct(scores['post']['auroc_entropy'])}"
            )
            msp = f"{_pct(scores['pre']['auroc_msp'])} / {_pct(scores['post']['auroc_msp'])}"
            lines.append(f"| {name} | {ent} | {msp} |")
    if result.get("diagrams"):
        lines += [""] + [f"![{name}]({name})" for name in result["diagrams"]]
    return "\n".join(lines) + "\n"
