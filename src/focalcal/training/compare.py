"""Compare runs in one table (the papers' Table 1), with intervals and p-values against CE.

Each run is evaluated when it has no ``metrics.json`` yet (or one made with other settings).
The p-value is the one-sided paired bootstrap (:func:`focalcal.metrics.paired_bootstrap`) of
"the run's ECE is lower than the baseline's", both evaluated on the same resampled test items,
pre-T and post-T (each run scaled with its own T).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from .. import metrics
from .._io import atomic_write_text
from .aggregate import seed_mean_samples, summarize
from .evaluate import load_logits
from .report import fmt_interval, fmt_mean_std, fmt_metric, md_table
from .runs import ensure_evaluated

__all__ = ["compare_runs", "format_comparison", "format_group_comparison"]

_COLUMNS = ("error", "nll", "ece", "adaece", "classwise_ece", "smooth_ece")
_HEADERS = {
    "error": "Error (%)",
    "nll": "NLL pre / post",
    "ece": "ECE (%) pre / post (T)",
    "adaece": "AdaECE (%) pre / post",
    "classwise_ece": "CW-ECE (%) pre / post",
    "smooth_ece": "smECE (%) pre / post",
}


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
    per_run: bool = False,
) -> dict[str, Any]:
    """Table across ``run_dirs``; returns ``{"rows": [...], "groups": [...], "markdown": str}``
    and writes ``compare.json`` / ``compare.md`` (and ``reliability_overlay_{pre,post}.png``)
    to ``out_dir`` if given.

    ``rows`` has one entry per run; ``groups`` one per (dataset, model, loss, γ) with mean ± std
    over its runs (the seeds), seed-averaged 95% intervals, ``n_seeds`` and the p-value against
    the baseline group. The Markdown table shows the groups, or the runs with ``per_run``.
    Runs must share the test set (same labels). ``baseline`` names the reference loss; when no
    run uses it, p-values are omitted.
    """
    if not run_dirs:
        raise ValueError("runs: expected at least one run folder, got none")
    runs = [Path(r) for r in run_dirs]
    results = [
        ensure_evaluated(r, n_bootstrap=n_bootstrap, ts_criterion=ts_criterion, seed=seed)
        for r in runs
    ]
    logits = [load_logits(r) for r in runs]
    labels = _common_test_labels(runs, logits)
    base_idx = next((i for i, r in enumerate(results) if r["loss"] == baseline), None)
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
            base = (logits[base_idx]["test_logits"], results[base_idx])
            row["p_vs_baseline"] = _p_values(
                (lg["test_logits"], res), base, labels, n_bootstrap, seed
            )
        rows.append(row)
    groups = _groups(runs, results, logits, baseline, n_bootstrap, seed)
    shown_baseline = baseline if base_idx is not None else None
    markdown = (
        format_comparison(rows, shown_baseline)
        if per_run
        else format_group_comparison(groups, shown_baseline)
    )
    out: dict[str, Any] = {"rows": rows, "groups": groups, "markdown": markdown}
    out["baseline"] = baseline
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


def _common_test_labels(runs: list[Path], logits: list[dict[str, Tensor]]) -> Tensor:
    """The test labels every run shares; refuses runs tested on other samples, naming them."""
    labels = logits[0]["test_labels"]
    other = [
        str(run)
        for run, lg in zip(runs, logits, strict=True)
        if lg["test_labels"].shape != labels.shape or not bool((lg["test_labels"] == labels).all())
    ]
    if other:
        raise ValueError(
            f"runs: {', '.join(other)} were tested on other samples than {runs[0]}; "
            "compare runs on one test set"
        )
    return labels


def _groups(
    runs: list[Path],
    results: list[dict[str, Any]],
    logits: list[dict[str, Tensor]],
    baseline: str,
    n_bootstrap: int,
    seed: int,
) -> list[dict[str, Any]]:
    """One summary per (dataset, model, loss, γ), in the order of first appearance."""
    members: dict[tuple, list[int]] = {}
    for i, res in enumerate(results):
        key = (res["dataset"], res["model"], res["loss"], res.get("gamma"))
        members.setdefault(key, []).append(i)
    pairs = {key: [(results[i], logits[i]) for i in idx] for key, idx in members.items()}
    base_key = next((key for key in members if key[2] == baseline), None)
    groups = []
    for key, idx in members.items():
        dataset, model, loss, gamma = key
        group: dict[str, Any] = {
            "label": _run_label(results[idx[0]]),
            "dataset": dataset,
            "model": model,
            "loss": loss,
            "gamma": gamma,
            "n_seeds": len(idx),
            "runs": [str(runs[i]) for i in idx],
            **summarize(pairs[key], n_bootstrap, seed),
        }
        if base_key is not None and key != base_key and n_bootstrap > 0:
            group["p_vs_baseline"] = _group_p_values(pairs[key], pairs[base_key], n_bootstrap, seed)
        groups.append(group)
    return groups


def _group_p_values(
    group: list[tuple[dict[str, Any], dict[str, Tensor]]],
    base: list[tuple[dict[str, Any], dict[str, Tensor]]],
    n_bootstrap: int,
    seed: int,
) -> dict[str, float]:
    """One-sided paired-bootstrap p-values of "the group's seed-mean ECE < the baseline's":
    the same resampled test items for every run of both groups,

    .. math::
        p = \\frac{1 + \\#\\{r : \\bar m^*_r(\\text{group}) \\ge \\bar m^*_r(\\text{base})\\}}{1 + R}

    which is :func:`focalcal.metrics.paired_bootstrap`'s p-value for groups of one run each."""
    n_bins = group[0][0]["n_bins"]
    p = {}
    for stage in ("pre", "post"):
        mine = seed_mean_samples(group, "ece", stage, n_bootstrap, n_bins, seed)
        theirs = seed_mean_samples(base, "ece", stage, n_bootstrap, n_bins, seed)
        p[stage] = (1 + int((mine - theirs >= 0).sum())) / (1 + n_bootstrap)
    return p


def _p_values(
    run: tuple[Tensor, dict[str, Any]],
    base: tuple[Tensor, dict[str, Any]],
    labels: Tensor,
    n_bootstrap: int,
    seed: int,
) -> dict[str, float]:
    """One-sided paired-bootstrap p-values of "the run's ECE < the baseline's", per stage."""
    return {
        stage: float(
            metrics.paired_bootstrap(
                "ece",
                _scaled(run[0], run[1], stage),
                _scaled(base[0], base[1], stage),
                labels,
                n_resamples=n_bootstrap,
                seed=seed,
                from_logits=True,
                n_bins=run[1]["n_bins"],
            ).p_value
        )
        for stage in ("pre", "post")
    }


def _scaled(logits: Tensor, result: dict[str, Any], stage: str) -> Tensor:
    return logits if stage == "pre" else logits / result["temperature"]


def _value(key: str, entry: dict[str, Any]) -> str:
    return fmt_metric(key, entry["value"])


def _pre_post_cell(
    key: str, pre: dict[str, Any], post: dict[str, Any], t: float, show: Callable = _value
) -> str:
    """``pre [95% CI] / post (T)``, each shown by ``show`` (a run's value, a group's mean ±
    std); the error has no post value (T never changes it)."""
    text = show(key, pre)
    if "ci95" in pre:
        text += " " + fmt_interval(key, *pre["ci95"])
    if key != "error":
        text += " / " + show(key, post)
    if key == "ece":
        text += f" ({t:.2f})"
    return text


def format_comparison(rows: list[dict[str, Any]], baseline: str | None) -> str:
    """Markdown table: one row per run, "pre [95% CI] / post (T)" cells, p-values vs baseline
    (one-sided: small = the run's ECE is lower than the baseline's)."""
    return _table(rows, baseline, grouped=False)


def format_group_comparison(groups: list[dict[str, Any]], baseline: str | None) -> str:
    """Markdown table: one row per group of seeds, "mean ± std [seed-averaged 95% CI] / post"
    cells, ``n_seeds``, p-values vs the baseline group (one-sided, small = lower ECE)."""
    return _table(groups, baseline, grouped=True)


def _table(entries: list[dict[str, Any]], baseline: str | None, grouped: bool) -> str:
    show, show_score = (fmt_mean_std, fmt_mean_std) if grouped else (_value, fmt_metric)
    first = ["group", "n_seeds"] if grouped else ["run"]
    headers = [*first, *(_HEADERS[k] for k in _COLUMNS)]
    if baseline is not None:
        headers.append(f"p (ECE < {baseline}) pre / post")
    cells = []
    for e in entries:
        pre, post = e["test"]["pre"], e["test"]["post"]
        t = e["temperature"]["mean"] if grouped else e["temperature"]
        line = [e["label"], str(e["n_seeds"])] if grouped else [e["label"]]
        line += [_pre_post_cell(k, pre[k], post[k], t, show) for k in _COLUMNS]
        if baseline is not None:
            p = e.get("p_vs_baseline")
            line.append("—" if p is None else f"{p['pre']:.3g} / {p['post']:.3g}")
        cells.append(line)
    lines = md_table(headers, cells)
    ood_names = sorted({name for e in entries for name in e["ood"]})
    if ood_names:
        ood_headers = [first[0], *(f"AUROC {n} entropy / MSP (%)" for n in ood_names)]
        ood_rows = [_ood_cells(e, ood_names, show_score) for e in entries]
        lines += ["", *md_table(ood_headers, ood_rows)]
    return "\n".join(lines) + "\n"


def _ood_cells(entry: dict[str, Any], names: list[str], show: Callable) -> list[str]:
    cells = [entry["label"]]
    for name in names:
        s = entry["ood"].get(name, {}).get("pre")
        cells.append(
            "—"
            if s is None
            else f"{show('auroc', s['auroc_entropy'])} / {show('auroc', s['auroc_msp'])}"
        )
    return cells


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
