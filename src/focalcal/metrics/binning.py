"""The one binning primitive of focalcal.

Every binned calibration quantity (ECE, MCE, RMSCE, Classwise-ECE, AdaECE, reliability diagrams,
AdaFocal's per-bin γ, histogram binning) goes through these functions.

Convention (stated, not implied): bins are half-open on the left, ``(lo, hi]``; a value equal to
the lowest edge (0 for equal-width bins) goes to the first bin, unless the caller drops it with
:func:`above_lowest_edge` (the papers' code). Edges are compared in the dtype of the values, so
float32 confidences are compared with float32 edges, as in the papers' code.

This module imports only torch, so the losses can use it without the metrics' dependencies.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from focalcal._validation import check_bool

__all__ = [
    "BinSums",
    "above_lowest_edge",
    "assign_bins",
    "bin_sums",
    "classwise_bin_sums",
    "edges_in_dtype",
    "equal_mass_edges",
    "equal_width_edges",
]


class BinSums(NamedTuple):
    """Per-bin sufficient statistics, each of shape (..., n_bins).

    ``count`` is the number (or total weight) of items, ``conf_sum`` the sum of confidences and
    ``acc_sum`` the sum of correctness indicators in each bin. Means are ``sum / count``; sums of
    disjoint data add (``a + b``), which is how streaming and distributed metrics combine them.

    Example:
        >>> a = BinSums(torch.tensor([1.0, 0.0]), torch.tensor([0.3, 0.0]), torch.tensor([1.0, 0.0]))
        >>> (a + a).count
        tensor([2., 0.])
    """

    count: Tensor
    conf_sum: Tensor
    acc_sum: Tensor

    def __add__(self, other: object) -> BinSums:  # type: ignore[override]
        if not isinstance(other, BinSums):
            return NotImplemented
        return BinSums(*(a + b for a, b in zip(self, other, strict=True)))


def equal_width_edges(
    n_bins: int, *, dtype: torch.dtype = torch.float32, device=None, official: bool = False
) -> Tensor:
    """``n_bins + 1`` equal-width edges ``k / n_bins`` for ``k = 0..n_bins``.

    By default each edge is ``k / n_bins`` computed in float64 and rounded once to ``dtype``.
    ``official=True`` reproduces the papers' code, ``torch.linspace(0, 1, n_bins + 1)`` in float32,
    whose edges can be one ulp off (e.g. 0.20000002 instead of 0.2 for 15 bins).

    Example:
        >>> equal_width_edges(4)
        tensor([0.0000, 0.2500, 0.5000, 0.7500, 1.0000])
    """
    if check_bool(official, "official"):
        return torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float32, device=device).to(dtype)
    return torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=device).to(dtype)


def equal_mass_edges(values: Tensor, n_bins: int, *, counts: Tensor | None = None) -> Tensor:
    r"""``n_bins + 1`` equal-mass (adaptive) edges of the 1-D ``values``, in float64.

    Edge b is the sorted values linearly interpolated at the fractional rank ``b·N/B`` (ranks past
    ``N − 1`` are clamped), i.e. ``np.interp(linspace(0, N, B + 1), arange(N), sort(values))`` as in
    the papers' AdaECE. So ``e_0 = min(values)`` and ``e_B = max(values)``.

    .. math:: e_b = s_{\lfloor r_b \rfloor} + (r_b - \lfloor r_b \rfloor)
              (s_{\lfloor r_b \rfloor + 1} - s_{\lfloor r_b \rfloor}),\quad r_b = \min(bN/B, N-1)

    ``counts`` (N,) or (R, N) gives an integer multiplicity to each value (e.g. bootstrap resample
    counts): the edges are then those of the multiset, one row per weighting, without building it.

    Example:
        >>> equal_mass_edges(torch.tensor([0.1, 0.2, 0.3, 0.4]), 2)
        tensor([0.1000, 0.3000, 0.4000], dtype=torch.float64)
        >>> equal_mass_edges(torch.tensor([0.4, 0.1]), 2, counts=torch.tensor([3, 1]))
        tensor([0.1000, 0.4000, 0.4000], dtype=torch.float64)
    """
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(
            f"values: expected a non-empty 1-D tensor, got shape {tuple(values.shape)}"
        )
    s, order = torch.sort(values.detach().to(torch.float64))
    if counts is None:
        cumulative = torch.arange(1, s.numel() + 1, dtype=torch.float64, device=s.device)
    else:
        cumulative = counts[..., order].to(torch.float64).cumsum(-1)
    n = cumulative[..., -1:]  # (1,) or (R, 1): size of the (multi)set
    b = torch.arange(n_bins + 1, dtype=torch.float64, device=s.device)
    rank = b * (n / n_bins)  # numpy's linspace(0, n, B + 1): i * step, last = n
    rank[..., -1:] = n
    rank = torch.minimum(rank, n - 1)
    lo = rank.floor()
    hi = torch.minimum(lo + 1, n - 1)
    s_lo = s[torch.searchsorted(cumulative, lo, right=True)]
    s_hi = s[torch.searchsorted(cumulative, hi, right=True)]
    return s_lo + (rank - lo) * (s_hi - s_lo)


def edges_in_dtype(edges: Tensor, dtype: torch.dtype, *, exact: bool = False) -> Tensor:
    """``edges`` converted to ``dtype`` for comparisons with values of that dtype.

    ``exact=False`` rounds to nearest (what ``tensor.gt(python_float)`` does in the papers' code).
    ``exact=True`` rounds each edge *down* to the largest representable value ``<= edge``; then for
    any value ``v`` of ``dtype``, ``v <= rounded_edge`` holds exactly when ``v <= edge`` in exact
    arithmetic, so float32 confidences are binned as if compared with the float64 edge.

    Example:
        >>> e = torch.tensor([0.6], dtype=torch.float64)
        >>> v = torch.tensor([0.6], dtype=torch.float32)  # 0.60000002384..., above 3/5
        >>> bool(v <= edges_in_dtype(e, torch.float32)), bool(v <= edges_in_dtype(e, torch.float32, exact=True))
        (True, False)
    """
    rounded = edges.to(dtype)
    if not check_bool(exact, "exact") or rounded.dtype == edges.dtype:
        return rounded
    too_high = rounded.to(edges.dtype) > edges
    return torch.where(
        too_high, torch.nextafter(rounded, torch.full_like(rounded, -torch.inf)), rounded
    )


def assign_bins(values: Tensor, edges: Tensor, *, exact: bool = False) -> Tensor:
    r"""Index of the ``(edges[b], edges[b+1]]`` bin of each value (int64).

    Values at or below ``edges[0]`` go to bin 0 and values above ``edges[-1]`` to the last bin, so
    every value lands in exactly one of ``len(edges) - 1`` bins. Edges are compared in the dtype of
    ``values``: rounded to nearest by default (the papers' code), or, with ``exact=True``, so that
    the comparison is exact against the higher-precision edges (see :func:`edges_in_dtype`).

    .. math:: b(v) = \min\{b : v \le e_{b+1}\}

    ``edges`` (B + 1,) gives the shape of ``values``; ``edges`` (R, B + 1), one set of edges per
    row (e.g. per bootstrap resample), bins the 1-D ``values`` (N,) against each: (R, N).

    Example:
        >>> assign_bins(torch.tensor([0.0, 0.1, 0.5, 0.51, 1.0]), equal_width_edges(2))
        tensor([0, 0, 0, 1, 1])
        >>> assign_bins(torch.tensor([0.2, 0.6]), torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.1, 1.0]]))
        tensor([[0, 1],
                [1, 1]])
    """
    inner = edges_in_dtype(edges[..., 1:-1], values.dtype, exact=exact).contiguous()
    if edges.ndim == 1:
        return torch.bucketize(values.contiguous(), inner, right=False)
    return torch.searchsorted(inner, values.expand(edges.shape[0], -1).contiguous(), right=False)


def above_lowest_edge(values: Tensor, edges: Tensor, *, exact: bool = False) -> Tensor:
    """Whether each value lies strictly above the lowest edge ``edges[..., 0]`` (bool).

    The papers' code leaves a value equal to the lowest edge (a confidence of 0, or the minimum
    confidence for equal-mass edges) in no bin while still counting it in N; this mask is that
    rule, for every metric and the bootstrap. ``edges`` (R, B + 1) gives an (R, N) mask.

    Example:
        >>> above_lowest_edge(torch.tensor([0.0, 0.3]), equal_width_edges(2))
        tensor([False,  True])
    """
    lowest = edges_in_dtype(edges[..., :1], values.dtype, exact=exact)
    return values > lowest


def bin_sums(
    bin_index: Tensor,
    confidence: Tensor,
    correct: Tensor,
    n_bins: int,
    *,
    weight: Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> BinSums:
    """Sum counts, confidences and correctness per bin, without a Python loop.

    Args:
        bin_index: (N,) or (N, K) int64 bin of each item (e.g. from :func:`assign_bins`).
        confidence: same shape, the predicted probability of each item.
        correct: same shape, 1 where the event happened (top-label correct / label == class).
        n_bins: number of bins B.
        weight: optional (N,) weight of each row (e.g. 0 for ignored items), a weight per item
            of the shape of ``confidence``, or (R, N) for R weightings of the rows at once (e.g.
            bootstrap resampling counts); the shape of ``confidence`` takes precedence.
        dtype: accumulation dtype (float64 keeps streaming sums exact enough to sync).

    Returns:
        :class:`BinSums` of shape (B,) for 1-D input, or (K, B) for (N, K) input (one row per column,
        as needed by Classwise-ECE); with an (R, N) ``weight`` a leading R dimension is added.

    Example:
        >>> s = bin_sums(torch.tensor([0, 1, 1]), torch.tensor([0.2, 0.7, 0.9]),
        ...              torch.tensor([0, 1, 0]), 2)
        >>> s.count, s.acc_sum
        (tensor([1., 2.], dtype=torch.float64), tensor([0., 1.], dtype=torch.float64))
    """
    if bin_index.shape != confidence.shape or correct.shape != confidence.shape:
        raise ValueError(
            "bin_sums: bin_index, confidence and correct must have the same shape, got "
            f"{tuple(bin_index.shape)}, {tuple(confidence.shape)}, {tuple(correct.shape)}"
        )
    device = confidence.device
    conf = confidence.to(dtype)
    acc = correct.to(dtype)
    ones = torch.ones_like(conf)
    if bin_index.ndim == 1:
        flat_index, size, out_shape = bin_index, n_bins, (n_bins,)
    else:
        k = bin_index.shape[1]
        offsets = torch.arange(k, device=device).mul_(n_bins)
        flat_index = (bin_index + offsets).reshape(-1)
        size, out_shape = k * n_bins, (k, n_bins)
    stacked = torch.stack([ones.reshape(-1), conf.reshape(-1), acc.reshape(-1)])  # (3, M)
    if weight is None or weight.ndim == 1 or weight.shape == confidence.shape:
        if weight is not None:
            w = weight.to(dtype)
            w = w.unsqueeze(-1).expand_as(conf) if w.ndim < conf.ndim else w
            stacked = stacked * w.reshape(1, -1)
        sums = torch.zeros(3, size, dtype=dtype, device=device)
        sums.index_add_(1, flat_index.reshape(-1), stacked)
        return BinSums(*(s.reshape(out_shape) for s in sums))
    if weight.ndim != 2 or weight.shape[1] != confidence.shape[0]:
        raise ValueError(
            f"bin_sums: weight must have shape (N,) or (R, N) with N={confidence.shape[0]}, "
            f"got {tuple(weight.shape)}"
        )
    w = weight.to(dtype)
    if conf.ndim == 2:
        w = w.unsqueeze(-1).expand(-1, -1, conf.shape[1]).reshape(w.shape[0], -1)
    weighted = stacked.unsqueeze(1) * w.unsqueeze(0)  # (3, R, M)
    sums = torch.zeros(3, w.shape[0], size, dtype=dtype, device=device)
    sums.index_add_(2, flat_index.reshape(-1), weighted)
    return BinSums(*(s.reshape(w.shape[0], *out_shape) for s in sums))


def classwise_bin_sums(
    probs: Tensor,
    labels: Tensor,
    edges: Tensor,
    *,
    exact: bool = False,
    exclude_lowest: bool = False,
    weight: Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> BinSums:
    r"""Per-class bin sums of all C probability columns against the events ``labels == c``.

    Equal to ``bin_sums(assign_bins(probs, edges), probs, one_hot(labels), B)`` of shape (C, B),
    but without materialising N·C bin indices: every probability at or below ``edges[1]`` lies in
    bin 0, and at most ``1 / edges[1]`` entries per row lie above it, so only those are binned;
    bin 0 is the per-class total minus the other bins. With many classes most probabilities are
    small, so this bins a small fraction of the N·C entries.

    Args:
        probs: (N, C) probabilities (any float dtype; compared in that dtype).
        labels: (N,) int64 class indices.
        edges: (B + 1,) increasing bin edges with ``edges[1] > 0``.
        exact: compare exactly against higher-precision edges (see :func:`edges_in_dtype`).
        exclude_lowest: put values ``<= edges[0]`` in no bin (the papers' code), else in bin 0.
        weight: optional (N,) weight of each row, or (R, N) for R weightings at once.
        dtype: accumulation dtype.

    Returns:
        :class:`BinSums` of shape (C, B), or (R, C, B) for an (R, N) ``weight``;
        ``acc_sum[c, b]`` counts rows with label ``c``.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
        >>> classwise_bin_sums(p, torch.tensor([0, 0]), equal_width_edges(2)).acc_sum
        tensor([[1., 1.],
                [0., 0.]], dtype=torch.float64)
    """
    check_bool(exclude_lowest, "exclude_lowest")
    n, c = probs.shape
    n_bins = edges.numel() - 1
    device = probs.device
    inner = edges_in_dtype(edges[1:-1], probs.dtype, exact=exact)
    lead: tuple[int, ...] = () if weight is None or weight.ndim == 1 else (weight.shape[0],)
    w = None if weight is None else weight.to(dtype).reshape(-1, n)  # (R, N)

    def per_class(values: Tensor) -> Tensor:
        """Weighted column sums of an (N, C) tensor: (C,) or (R, C)."""
        if w is None:  # cascade summation: accurate in float32 too, but not in half precision
            half = values.dtype in (torch.float16, torch.bfloat16)
            return values.sum(0, dtype=torch.float32 if half else None).to(dtype)
        return (w @ values.to(dtype)).reshape(*lead, c)

    def per_label(row_values: Tensor) -> Tensor:
        """Sum of (weighted) per-row values into the row's label: (C,) or (R, C)."""
        v = row_values.to(dtype) if w is None else w * row_values.to(dtype)
        out = torch.zeros(*v.shape[:-1], c, dtype=dtype, device=device)
        return out.index_add_(-1, labels, v).reshape(*lead, c)

    ones = torch.ones(n, dtype=dtype, device=device)
    total_count = (ones.sum() if w is None else w.sum(1, keepdim=True)).reshape(*lead, 1)
    total_count = total_count.expand(*lead, c)
    total_conf = per_class(probs)
    total_acc = per_label(ones)
    count = torch.zeros(*lead, c, n_bins, dtype=dtype, device=device)
    conf_sum, acc_sum = torch.zeros_like(count), torch.zeros_like(count)
    if n_bins > 1:
        rows, cols = torch.nonzero(probs > inner[0], as_tuple=True)
        values = probs[rows, cols]
        upper = bin_sums(
            cols * n_bins + torch.bucketize(values, inner, right=False),
            values,
            labels[rows] == cols,
            c * n_bins,
            weight=None if w is None else w[:, rows].reshape(*lead, -1),
            dtype=dtype,
        )
        count, conf_sum, acc_sum = (s.reshape(*lead, c, n_bins) for s in upper)
    count[..., 0] = total_count - count[..., 1:].sum(-1)
    conf_sum[..., 0] = total_conf - conf_sum[..., 1:].sum(-1)
    acc_sum[..., 0] = total_acc - acc_sum[..., 1:].sum(-1)
    if exclude_lowest:
        low = ~above_lowest_edge(probs, edges, exact=exact)
        count[..., 0] -= per_class(low.to(dtype))
        conf_sum[..., 0] -= per_class(torch.where(low, probs, 0).to(dtype))
        acc_sum[..., 0] -= per_label(low.gather(1, labels.unsqueeze(1)).squeeze(1))
    return BinSums(count, conf_sum, acc_sum)
