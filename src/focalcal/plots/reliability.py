r"""Reliability diagrams: per-bin accuracy against confidence, one or several models on one axes.

For equal-width bins :math:`B_b` of the top-label confidence (``(lo, hi]``, as
:func:`focalcal.metrics.ece`), the diagram draws a bar of height

.. math:: \mathrm{acc}_b = \frac{1}{|B_b|}\sum_{i \in B_b} 1[\hat y_i = y_i]

per non-empty bin, shades the gap between :math:`\mathrm{acc}_b` and the bin's mean confidence
:math:`\mathrm{conf}_b`, shows the diagonal (perfect calibration), a histogram of the confidences
(% of samples per bin, in a panel below) and the ECE of each model in the legend.
Per-bin statistics come from :func:`focalcal.metrics.calibration_bins`, the ECE from
:func:`focalcal.metrics.ece` (the same bins).

Reference: DeGroot & Fienberg 1983; Niculescu-Mizil & Caruana 2005; Guo et al. 2017 (Fig. 1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from focalcal._io import atomic_write
from focalcal._optional import require
from focalcal._validation import check_bool, check_n_bins
from focalcal.metrics import calibration_bins, ece

__all__ = ["reliability_diagram", "save_reliability_diagram"]

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def _stacked_axes(fig: Any) -> tuple[Any, Any]:
    """Diagram and histogram panels (3:1, shared x) on an empty figure."""
    ax, hist_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    return ax, hist_ax


def _appended_axes(ax: Any) -> Any:
    """A panel appended under a user's ``ax`` (sharing its x axis) for the histogram."""
    axes_grid1 = require("mpl_toolkits.axes_grid1", "plot")
    return axes_grid1.make_axes_locatable(ax).append_axes("bottom", size="28%", pad=0.12, sharex=ax)


def _models(probs: Any, label: str | None) -> list[tuple[str | None, Any]]:
    if isinstance(probs, Mapping):
        if not probs:
            raise ValueError("probs: expected at least one model, got an empty mapping")
        for name in probs:
            if not isinstance(name, str):
                raise TypeError(f"probs: expected model names (str) as keys, got {name!r}")
        return list(probs.items())
    return [(label, probs)]


def reliability_diagram(
    probs: Any,
    labels: Any,
    n_bins: int = 15,
    ax: Any = None,
    *,
    from_logits: bool = False,
    label: str | None = None,
    convention: str = "default",
    colors: Sequence[Any] | None = None,
    show_gap: bool = True,
    show_histogram: bool = True,
    hist_ax: Any = None,
    title: str | None = None,
) -> Any:
    """Draw a reliability diagram on ``ax`` (a new figure when ``None``) and return the Axes.

    Args:
        probs: (N, C) probabilities (numpy or torch), or logits with ``from_logits=True``; or a
            mapping ``{model name: (N, C) array}`` to overlay several models (shared ``labels``).
        labels: (N,) integer class labels.
        n_bins: number of equal-width confidence bins.
        ax: matplotlib Axes to draw on.
        from_logits: apply a softmax first.
        label: legend name of a single model (``probs`` not a mapping).
        convention: bin convention of :func:`focalcal.metrics.ece` (``"default"``/``"official"``).
        colors: one matplotlib colour per model (default: the property cycle).
        show_gap: shade the gap between each bar and its bin's mean confidence.
        show_histogram: draw the histogram of confidences (% of samples per bin) in a panel
            under the diagram (in ``ax.figure.axes``).
        hist_ax: Axes for the histogram; by default a new figure gets a panel under the diagram,
            and a given ``ax`` gets one appended under it (sharing the x axis).
        title: axes title.

    Returns:
        The matplotlib ``Axes`` of the diagram.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> logits = 3 * rng.standard_normal((2000, 10))
        >>> labels = (logits / 3 + rng.standard_normal((2000, 10))).argmax(1)
        >>> ax = reliability_diagram({"raw": logits, "T = 3": logits / 3}, labels, from_logits=True)
        >>> [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()]
        ['perfect calibration', 'raw', 'gaps', 'T = 3']
    """
    require("matplotlib", "plot")
    n_bins = check_n_bins(n_bins)
    show_gap = check_bool(show_gap, "show_gap")
    show_histogram = check_bool(show_histogram, "show_histogram")
    models = _models(probs, label)
    colors = _colors(colors, len(models))
    if ax is None:
        from matplotlib.figure import Figure

        ax, new_hist_ax = _stacked_axes(Figure(figsize=(5.0, 6.0), layout="constrained"))
        hist_ax = hist_ax if hist_ax is not None else new_hist_ax
    ax.plot([0, 1], [0, 1], ls="--", color="0.45", lw=1.2, label="perfect calibration", zorder=3)
    if not show_histogram:
        hist_ax = None
    elif hist_ax is None:
        hist_ax = _appended_axes(ax)
    kw = {"n_bins": n_bins, "from_logits": from_logits, "convention": convention}
    for m, ((name, model_probs), color) in enumerate(zip(models, colors, strict=False)):
        bars = _Bars(n_bins, m, len(models))
        bins = calibration_bins(model_probs, labels, **kw)
        value = float(ece(model_probs, labels, **kw))
        _draw_model(
            ax, hist_ax, bins, bars, color, f"{name or 'accuracy'} (ECE {100 * value:.2f}%)"
        )
        if show_gap:
            _draw_gaps(ax, bins, bars, color, first=m == 0, single=len(models) == 1)
    _style(ax, hist_ax, title)
    return ax


def _colors(colors: Sequence[Any] | None, n_models: int) -> Sequence[Any]:
    """One colour per model: the given ones, or the property cycle."""
    if colors is None:
        return [f"C{i}" for i in range(n_models)]
    if len(colors) < n_models:
        raise ValueError(
            f"colors: expected at least {n_models} colours (one per model), got {len(colors)}"
        )
    return colors


class _Bars:
    """Geometry of model ``m``'s bars among ``n_models`` side by side in each of ``n_bins``."""

    def __init__(self, n_bins: int, m: int, n_models: int) -> None:
        width = 1.0 / n_bins
        self.width = 0.92 * width / n_models
        self.offset = 0.04 * width + m * self.width

    def left(self, edges: Any) -> Any:
        return edges[:-1] + self.offset

    def style(self) -> dict[str, Any]:
        return {"width": self.width, "align": "edge", "zorder": 2}


def _draw_model(ax: Any, hist_ax: Any, bins: Any, bars: _Bars, color: Any, label: str) -> None:
    """One model's accuracy bars (non-empty bins) and its confidence histogram."""
    left = bars.left(bins.edges.cpu().numpy())
    filled = bins.count.cpu().numpy() > 0
    accuracy = bins.accuracy.cpu().numpy()[filled]
    ax.bar(
        left[filled],
        accuracy,
        color=color,
        alpha=0.85,
        edgecolor="black",
        linewidth=0.6,
        label=label,
        **bars.style(),
    )
    if hist_ax is not None:
        percent = 100 * bins.proportion.cpu().numpy()
        hist_ax.bar(
            left, percent, color=color, alpha=0.8, edgecolor="black", lw=0.4, **bars.style()
        )


def _draw_gaps(ax: Any, bins: Any, bars: _Bars, color: Any, *, first: bool, single: bool) -> None:
    """Hatched gap between each accuracy bar and its bin's mean confidence."""
    filled = bins.count.cpu().numpy() > 0
    accuracy = bins.accuracy.cpu().numpy()[filled]
    gap = bins.confidence.cpu().numpy()[filled] - accuracy
    legend = "gap to mean confidence" if single else "gaps (hatched)"
    ax.bar(
        bars.left(bins.edges.cpu().numpy())[filled],
        gap,
        bottom=accuracy,
        facecolor=(1.0, 0.2, 0.3, 0.25) if single else "none",
        hatch="//",
        edgecolor="crimson" if single else color,
        linewidth=0.5,
        label=legend if first else None,
        **bars.style(),
    )


def _style(ax: Any, hist_ax: Any, title: str | None) -> None:
    """Axes limits, labels, grid, legend and title of the diagram (and its histogram)."""
    if hist_ax is not None:
        hist_ax.set_xlim(0, 1)
        hist_ax.set_ylabel("% of samples")
        hist_ax.set_xlabel("confidence (max probability)")
        hist_ax.grid(True, axis="y", ls=":", lw=0.6, alpha=0.6)
        ax.tick_params(labelbottom=False)
    else:
        ax.set_xlabel("confidence (max probability)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize="small", framealpha=0.9)
    ax.grid(True, ls=":", lw=0.6, alpha=0.6)
    if title:
        ax.set_title(title)


def save_reliability_diagram(
    path: str | os.PathLike[str],
    probs: Any,
    labels: Any,
    *,
    figsize: tuple[float, float] = (5.0, 6.0),
    dpi: int = 120,
    **kwargs: Any,
) -> Path:
    """Draw :func:`reliability_diagram` on a new figure and write it to ``path`` atomically.

    The format comes from the suffix (``.png``, ``.svg`` or ``.pdf``); the figure is written to a
    temporary file in the same folder and moved into place (:mod:`focalcal._io`). No pyplot state
    is touched. Returns the path written.

    Example:
        >>> import numpy as np, tempfile, os
        >>> rng = np.random.default_rng(0)
        >>> p = rng.dirichlet(np.ones(3), 500)
        >>> out = save_reliability_diagram(
        ...     os.path.join(tempfile.mkdtemp(), "rd.svg"), p, p.argmax(1), label="model")
        >>> out.suffix, out.stat().st_size > 1000
        ('.svg', True)
    """
    require("matplotlib", "plot")
    from matplotlib.figure import Figure

    target = Path(path)
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"path: expected a file name ending in one of {sorted(_FORMATS)}, got {str(path)!r}"
        )
    if not target.parent.is_dir():
        raise ValueError(f"path: folder {str(target.parent)!r} does not exist")
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    if kwargs.get("show_histogram", True):
        ax, kwargs["hist_ax"] = _stacked_axes(fig)
    else:
        ax = fig.add_subplot()
    reliability_diagram(probs, labels, ax=ax, **kwargs)
    atomic_write(target, lambda handle: fig.savefig(handle, format=fmt))
    return target
