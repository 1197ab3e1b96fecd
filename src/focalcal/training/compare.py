"""Compare runs in one table (the papers' Table 1), with intervals and p-values against CE.

Each run is evaluated when it has no ``metrics.json`` yet (or one made with other settings).
The p-value is the one-sided paired bootstrap (:func:`focalcal.metrics.paired_bootstrap`) of
"the run's ECE is lower than the baseline's", both evaluated on the same resampled test items,
pre-T and post-T (each run scaled with its own T).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from .. import metrics
from .._io import atomic_write_text
from .evaluate import METRICS_FILE, evaluate_run, load_logits

__all__ = ["compare_runs", "format_comparison"]

_COLUMNS = ("error", "nll", "ece", "adaece", "classwise_ece", "smooth_ece")
_HEADERS = {
    "error": "Error (%)",
    "nll": "NLL pre / post",
    "ece": "ECE (%) pre / post (T)",
    "adaece": "AdaECE (%) pre / post",
    "classwise_ece": "CW-ECE (%) pre / post",
    "smooth_ece": "smECE (%) pre / post",
}


def _load_or_evaluate(run: Path, ts_criterion: str, n_bootstrap: int, seed: int) -> dict[str, Any]:
    path = run / METRICS_FILE
    if path.is_file():
        result = json.loads(path.read_text())
        if result.get("ts_criterion") == ts_criterion and result.get("n_bootstrap") == n_bootstrap:
            return result
    return evaluate_run(run, ts_criterion=ts_criterion, n_bootstrap=n_bootstrap, seed=seed)


def _run_label(result: dict[str, Any]) -> str:
    gamma = result.get("gamma")
    return result["loss"] + (f" (γ={gamma:g})" if gamma is not None else "")


def compare_runs(
    run_dirs: list[str | Path] | tuple[str | Path, ...],
    *,
    baseline: str = "ce",
    ts_criterion: str = "ece",
    n_bootstrap: int = 1000,
    seed: int = 0,
    out_dir: str | Path | None = None,
    diagrams: bool = False,
) -> dict[str, Any]:
    """Table across ``run_dirs``; returns ``{"rows": [...], "markdown": str}`` and writes
    ``compare.json`` / ``compare.md`` (and ``reliability_overlay_{pre,post}.png``) to ``out_dir`` if given.

    Runs must share the test set (same labels). ``baseline`` names the reference loss; when no
    run uses it, p-values are omitted.
    """
    if not run_dirs:
        raise ValueError("runs: expected at least one run folder, got none")
    runs = [Path(r) for r in run_dirs]
    results = [_load_or_evaluate(r, ts_criterion, n_bootstrap, seed) for r in runs]
    logits = [load_logits(r) for r in runs]
    labels = logits[0]["test_labels"]
    for run, lg in zip(runs, logits, strict=True):
        if not (
            lg["test_labels"].shape == labels.shape and bool((lg["test_labels"] == labels).all())
        ):
            raise ValueError(
                f"runs: {run} was tested on other samples than {runs[0]}; compare runs on one test set"
            )
    base_idx = next((i for i, r in enumerate(results) if r["loss"] == baseline), None)
    n_bins = results[0]["n_bins"]
    rows = []
    for i, (run, res, lg) in enumerate(zip(runs, results, logits, strict=True)):
        row: dict[str, Any] = {
            "run": str(run),
            "label": _run_label(res),
            "loss": res["loss"],
            "gamma": res.get("gamma"),
            "temperature": res["temperature"],
            "test": res["test"],
            "ood": res.get("ood", {}),
        }
        if base_idx is not None and i != base_idx and n_bootstrap > 0:
            base, base_res = logits[base_idx]["test_logits"], results[base_idx]
            row["p_vs_baseline"] = {
                stage: float(
                    metrics.paired_bootstrap(
                        "ece",
                        _scaled(lg["test_logits"], res, stage),
                        _scaled(base, base_res, stage),
                        labels,
                        n_resamples=n_bootstrap,
                        seed=seed,
                        from_logits=True,
                        n_bins=n_bins,
                    ).p_value
                )
                for stage in ("pre", "post")
            }
        rows.append(row)
    markdown = format_comparison(rows, baseline if base_idx is not None else None)
    out: dict[str, Any] = {"rows": rows, "markdown": markdown, "baseline": baseline}
    if out_dir is not None:
        out_path = Path(out_dir)
        if diagrams:
            out["diagrams"] = _overlay(out_path, rows, logits, labels, results[0]["n_bins"])
        atomic_write_text(out_path / "compare.md", markdown)
        atomic_write_text(
            out_path / "compare.json",
            json.dumps({k: v for k, v in out.items() if k != "markdown"}, indent=2) + "\n",
        )
    return out


def _scaled(logits: Tensor, result: dict[str, Any], stage: str) -> Tensor:
    return logits if stage == "pre" else logits / result["temperature"]


def _fmt(key: str, value: float) -> str:
    return f"{value:.3f}" if key == "nll" else f"{100 * value:.2f}"


def _interval(key: str, entry: dict[str, Any]) -> str:
    if "ci95" not in entry:
        return ""
    lo, hi = entry["ci95"]
    return f" [{_fmt(key, lo)}, {_fmt(key, hi)}]"


def format_comparison(rows: list[dict[str, Any]], baseline: str | None) -> str:
    """Markdown table: one row per run, "pre [95% CI] / post (T)" cells, p-values vs baseline
    (one-sided: small = the run's ECE is lower than the baseline's)."""
    headers = ["run", *(_HEADERS[k] for k in _COLUMNS)]
    if baseline is not None:
        headers.append(f"p (ECE < {baseline}) pre / post")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        pre, post = row["test"]["pre"], row["test"]["post"]
        cells = [row["label"]]
        for key in _COLUMNS:
            text = _fmt(key, pre[key]["value"]) + _interval(key, pre[key])
            if key != "error":  # temperature scaling never changes the error
                text += " / " + _fmt(key, post[key]["value"])
            if key == "ece":
                text += f" ({row['temperature']:.2f})"
            cells.append(text)
        if baseline is not None:
            p = row.get("p_vs_baseline")
            cells.append("—" if p is None else f"{p['pre']:.3g} / {p['post']:.3g}")
        lines.append("| " + " | ".join(cells) + " |")
    ood_names = sorted({name for row in rows for name in row["ood"]})
    if ood_names:
        lines += [
            "",
            "| run | " + " | ".join(f"AUROC {n} entropy / MSP (%)" for n in ood_names) + " |",
        ]
        lines.append("|" + "---|" * (len(ood_names) + 1))
        for row in rows:
            cells = [row["label"]]
            for name in ood_names:
                s = row["ood"].get(name, {}).get("pre")
                cells.append(
                    "—"
                    if s is None
                    else f"{100 * s['auroc_entropy']:.2f} / {100 * s['auroc_msp']:.2f}"
                )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _overlay(
    out: Path,
    rows: list[dict[str, Any]],
    logits: list[dict[str, Tensor]],
    labels: Tensor,
    n_bins: int,
) -> list[str]:
    """One reliability diagram per stage (pre-T, post-T with each run's own T), runs overlaid."""
    from ..plots import save_reliability_diagram

    names = []
    for stage in ("pre", "post"):
        probs = {
            row["label"]: _scaled(lg["test_logits"], row, stage).softmax(1)
            for row, lg in zip(rows, logits, strict=True)
        }
        name = f"reliability_overlay_{stage}.png"
        title = "before temperature scaling" if stage == "pre" else "after temperature scaling"
        save_reliability_diagram(out / name, probs, labels, n_bins=n_bins, title=title)
        names.append(name)
    return names
