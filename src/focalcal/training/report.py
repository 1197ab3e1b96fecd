"""Formatting shared by every report: one number format, one Markdown table, one interval.

``evaluate``'s ``report.md``, ``compare``'s table and ``reproduce``'s ``results.md`` all print
metrics through :func:`fmt_metric` (metrics are fractions in the JSON files; tables show
percentages with two decimals, the NLL as is with three) and lay tables out with
:func:`md_table`.

Example:
    >>> fmt_metric("ece", 0.01234), fmt_metric("nll", 0.51234)
    ('1.23', '0.512')
    >>> fmt_interval("ece", 0.01, 0.02)
    '[1.00, 2.00]'
    >>> print("\\n".join(md_table(["loss", "ECE (%)"], [["ce", "1.23"]])))
    | loss | ECE (%) |
    |---|---|
    | ce | 1.23 |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "estimator_note",
    "fmt_interval",
    "fmt_mean_std",
    "fmt_metric",
    "format_results",
    "format_search",
    "md_table",
    "option_symbol",
]


def fmt_metric(key: str, value: float) -> str:
    """``value`` of metric ``key`` as printed in every table: percent (two decimals), the NLL
    as is (three decimals); NaN prints as ``nan``."""
    return f"{value:.3f}" if key == "nll" else f"{100 * value:.2f}"


def fmt_interval(key: str, low: float, high: float) -> str:
    """``[low, high]`` in :func:`fmt_metric`'s format."""
    return f"[{fmt_metric(key, low)}, {fmt_metric(key, high)}]"


def estimator_note(n_bins: int, n_bootstrap: int, *, seed_averaged: bool = False) -> str:
    """The sentence every report prints about its estimator and interval.

    Example:
        >>> estimator_note(15, 1000)
        'Estimates: plug-in binned metrics, 15 bins; intervals: 95% basic bootstrap (reflected around the estimate, which they contain), 1000 resamples of the test items.'
    """
    from ..metrics.bootstrap import DEFAULT_INTERVAL

    averaged = ", values averaged over seeds per resample" if seed_averaged else ""
    return (
        f"Estimates: plug-in binned metrics, {n_bins} bins; intervals: 95% {DEFAULT_INTERVAL} "
        f"bootstrap (reflected around the estimate, which they contain), {n_bootstrap} "
        f"resamples of the test items{averaged}."
    )


def fmt_mean_std(key: str, stat: dict[str, Any]) -> str:
    """``mean ± std`` of a ``{"mean": m, "std": s}`` statistic (only the mean when ``s`` is
    ``None``, i.e. a single seed)."""
    text = fmt_metric(key, stat["mean"])
    if stat.get("std") is not None:
        text += " ± " + fmt_metric(key, stat["std"])
    return text


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table with ``headers`` and one line per row of cells."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


_GREEK = {"gamma": "γ", "beta": "β", "alpha": "α", "lam": "λ"}


def option_symbol(option: str) -> str:
    """How reports name a tuned option: the papers' letter for ``gamma``, ``beta``, ``alpha``
    and ``lam`` (``γ``, ``β``, ``α``, ``λ``), else the option's own name (``margin``).

    Example:
        >>> option_symbol("beta"), option_symbol("margin")
        ('β', 'margin')
    """
    return _GREEK.get(option, option)


def format_search(record: dict[str, Any], *, mark_choice: bool = False) -> str:
    """The validation ECE of each candidate of a search record, ``γ=2: 3.10%, γ=5: 2.50%``
    (``margin=5: 3.20%, margin=10: 2.10%`` for another option; records without ``"option"``
    are γ searches). ``mark_choice`` puts the chosen candidate in bold (Markdown).

    Example:
        >>> rec = {"option": "margin", "grid": [5.0, 10.0], "val_ece": [0.032, 0.021], "value": 10.0}
        >>> format_search(rec, mark_choice=True)
        'margin=5: 3.20%, **margin=10: 2.10%**'
    """
    symbol = option_symbol(record.get("option", "gamma"))
    chosen = record.get("value", record.get("gamma"))
    cells = []
    for value, ece in zip(record["grid"], record["val_ece"], strict=True):
        cell = f"{symbol}={value:g}: {100 * ece:.2f}%"
        cells.append(f"**{cell}**" if mark_choice and value == chosen else cell)
    return ", ".join(cells)


# --------------------------------------------------------------------------- results.md

_SUMMARY_HEADERS = (
    "Loss",
    "Error (%)",
    "ECE (%) pre / post (T)",
    "AdaECE (%) pre / post",
    "CW-ECE (%) pre / post",
    "NLL pre / post",
)
_INTERVAL_HEADERS = (
    "Loss",
    "Error (%)",
    *(f"{m} {stage}" for m in ("ECE", "AdaECE", "CW-ECE") for stage in ("pre", "post")),
)


def _header(results: dict[str, Any]) -> list[str]:
    inv = results.get("invocation", {})
    machine = inv.get("machine", {})
    actions = inv.get("actions", {})
    return [
        f"# Suite `{results['suite']}`: {results['description']}",
        "",
        f"Command: `{inv.get('command', '')}`  ",
        f"Machine: {machine.get('processor', '?')}, {machine.get('cpu_count', '?')} cores, "
        f"torch {machine.get('torch', '?')}, GPU: {machine.get('gpu') or 'none'}  ",
        f"Wall time of this invocation: {inv.get('wall_seconds', 0) / 60:.1f} min "
        f"(runs trained {actions.get('trained', 0)}, resumed {actions.get('resumed', 0)}, "
        f"skipped {actions.get('skipped', 0)}).",
        "",
        "Cells are mean ± std over seeds (percent; NLL as is); pre / post temperature scaling, "
        "T fitted on the validation split. "
        + estimator_note(
            results["datasets"][0]["n_bins"] if results["datasets"] else 15,
            results["n_bootstrap"],
            seed_averaged=True,
        ),
    ]


def _dataset_section(ds: dict[str, Any], diagrams: list[str]) -> list[str]:
    rows = ds["rows"]
    n_seeds = len(rows[0]["seeds"]) if rows else 0
    train_min = sum(r["train_seconds"] for r in rows) / 60
    lines = [
        "",
        f"## {ds['title']}",
        "",
        f"Data: `{ds['data_root']}`; {ds['epochs']} epochs; {n_seeds} seed(s); test set "
        f"{ds['n_test']} samples; total training time {train_min:.1f} min.",
        "",
    ]
    lines += md_table(_SUMMARY_HEADERS, [_summary_cells(r) for r in rows])
    if rows and "ci95" in rows[0]["test"]["pre"]["ece"]:
        lines += ["", "95% bootstrap intervals (seed-averaged):", ""]
        lines += md_table(_INTERVAL_HEADERS, [_interval_cells(r) for r in rows])
    lines += _ranking(rows)
    ood_names = sorted({n for r in rows for n in r["ood"]})
    if ood_names:
        lines += [
            "",
            "OOD detection, AUROC (%) of the entropy score, pre / post T (max-softmax in "
            "results.json):",
            "",
        ]
        lines += md_table(["Loss", *ood_names], [_ood_cells(r, ood_names) for r in rows])
    for rec in ds["tuning"]:
        symbol = option_symbol(rec.get("option", "gamma"))
        value = rec.get("value", rec.get("gamma"))
        lines += [
            "",
            f"{symbol} search for `{rec['loss']}` ({rec['criterion']}, {rec['epochs']} epochs, "
            f"seed {rec['seed']}): {format_search(rec, mark_choice=True)} → "
            f"**{symbol} = {value:g}**",
        ]
    for name in diagrams:
        lines += ["", f"![{name}]({name})"]
    return lines


def format_results(results: dict[str, Any]) -> str:
    """Markdown of a suite's aggregated results (:func:`focalcal.training.aggregate.aggregate`):
    per dataset, the papers' table, intervals, ranking, OOD AUROC and the validation searches
    (γ, margin, β, ...)."""
    lines = _header(results)
    for ds in results["datasets"]:
        lines += _dataset_section(ds, results.get("diagrams", {}).get(ds["key"], []))
    return "\n".join(lines) + "\n"


def _ci(key: str, stat: dict[str, Any]) -> str:
    return fmt_interval(key, *stat["ci95"])


def _summary_cells(row: dict[str, Any]) -> list[str]:
    pre, post = row["test"]["pre"], row["test"]["post"]
    cells = [_label(row), fmt_mean_std("error", pre["error"])]
    for key in ("ece", "adaece", "classwise_ece", "nll"):
        cell = f"{fmt_mean_std(key, pre[key])} / {fmt_mean_std(key, post[key])}"
        if key == "ece":
            cell += f" ({row['temperature']['mean']:.2f})"
        cells.append(cell)
    return cells


def _interval_cells(row: dict[str, Any]) -> list[str]:
    pre, post = row["test"]["pre"], row["test"]["post"]
    cells = [_label(row), _ci("error", pre["error"])]
    for key in ("ece", "adaece", "classwise_ece"):
        cells += [_ci(key, pre[key]), _ci(key, post[key])]
    return cells


def _ood_cells(row: dict[str, Any], names: list[str]) -> list[str]:
    cells = [_label(row)]
    for name in names:
        s = row["ood"].get(name)
        cells.append(
            "—"
            if s is None
            else f"{fmt_mean_std('auroc', s['pre']['auroc_entropy'])} / "
            f"{fmt_mean_std('auroc', s['post']['auroc_entropy'])}"
        )
    return cells


def _label(row: dict[str, Any]) -> str:
    """The loss's label, with the value of its tuned option: ``Dual focal (γ=3)``,
    ``MbLS (margin=10)`` (rows without ``"tune_option"`` are γ-tuned or not tuned)."""
    option = row.get("tune_option", "gamma")
    value = row.get("tune_value", row.get("gamma"))
    if not row.get("tuned") or value is None:
        return row["label"]
    return f"{row['label']} ({option_symbol(option)}={value:g})"


def _ranking(rows: list[dict[str, Any]]) -> list[str]:
    if len(rows) < 2:
        return []
    lines = [""]
    for stage in ("pre", "post"):
        order = sorted(rows, key=lambda r: r["test"][stage]["ece"]["mean"])
        lines.append(
            f"Ranking by mean ECE {stage}-T: "
            + " < ".join(
                f"{_label(r)} ({fmt_metric('ece', r['test'][stage]['ece']['mean'])})" for r in order
            )
            + ("  " if stage == "pre" else "")
        )
    return lines
