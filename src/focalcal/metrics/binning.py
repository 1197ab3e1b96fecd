"""The one binning primitive of focalcal.

Every binned calibration quantity (ECE, MCE, RMSCE, Classwise-ECE, AdaECE, reliability diagrams,
AdaFocal's per-bin γ, histogram binning) goes through these functions.

Convention (stated, not implied): bins are half-open on the left, ``(lo, hi]``; a value equal to
the lowest edge (0 for equal-width bins) goes to the first bin. Edges are compared in the dtype of
the values, so float32 confidences are compared with float32 edges, as in the papers' code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["BinSums", "assign_bins", "bin_sums", "equal_mass_edges", "equal_width_edges"]


class BinSums(NamedTuple):
    """Per-bin sufficient statistics, each of shape (..., n_bins).

    ``count`` is the number (or total weight) of items, ``conf_sum`` the sum of confidences and
    ``acc_sum`` the sum of correctness indicators in each bin. Means are ``sum / count``.
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
    """
    if official:
        return torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float32, device=device).to(dtype)
    return torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=device).to(dtype)


def equal_mass_edges(values: Tensor, n_bins: int) -> Tensor:
    r"""``n_bins + 1`` equal-mass (adaptive) edges of the 1-D ``values``, in float64.

    Edge b is the sorted values linearly interpolated at the fractional rank ``b·N/B`` (ranks past
    ``N − 1`` are clamped), i.e. ``np.interp(linspace(0, N, B + 1), arange(N), sort(values))`` as in
    the papers' AdaECE. So ``e_0 = min(values)`` and ``e_B = max(values)``.

    .. math:: e_b = s_{\lfloor r_b \rfloor} + (r_b - \lfloor r_b \rfloor)
              (s_{\lfloor r_b \rfloor + 1} - s_{\lfloor r_b \rfloor}),\quad r_b = \min(bN/B, N-1)

    Example:
        >>> equal_mass_edges(torch.tensor([0.1, 0.2, 0.3, 0.4]), 2)
        tensor([0.1000, 0.3000, 0.4000], dtype=torch.float64)
    """
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(
            f"values: expected a non-empty 1-D tensor, got shape {tuple(values.shape)}"
        )
    s = torch.sort(values.detach().to(torch.float64)).values
    n = s.numel()
    rank = torch.linspace(0, n, n_bins + 1, dtype=torch.float64, device=s.device).clamp_(max=n - 1)
    lo = rank.floor().long()
    hi = (lo + 1).clamp_(max=n - 1)
    frac = rank - lo.to(torch.float64)
    return s[lo] + frac * (s[hi] - s[lo])


def assign_bins(values: Tensor, edges: Tensor) -> Tensor:
    r"""Index of the ``(edges[b], edges[b+1]]`` bin of each value (int64, same shape as ``values``).

    Values at or below ``edges[0]`` go to bin 0 and values above ``edges[-1]`` to the last bin, so
    every value lands in exactly one of ``len(edges) - 1`` bins.

    .. math:: b(v) = \min\{b : v \le e_{b+1}\}

    Example:
        >>> assign_bins(torch.tensor([0.0, 0.1, 0.5, 0.51, 1.0]), equal_width_edges(2))
        tensor([0, 0, 0, 1, 1])
    """
    inner = edges[1:-1].to(values.dtype)
    return torch.bucketize(values.contiguous(), inner.contiguous(), right=False)


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
        weight: optional (N,) weight of each row (e.g. 0 for ignored items).
        dtype: accumulation dtype (float64 keeps streaming sums exact enough to sync).

    Returns:
        :class:`BinSums` of shape (B,) for 1-D input, or (K, B) for (N, K) input (one row per column,
        as needed by Classwise-ECE).
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
    if weight is not None:
        w = weight.to(dtype)
        w = w.unsqueeze(-1) if conf.ndim == 2 else w
        conf, acc, ones = conf * w, acc * w, ones * w
    if bin_index.ndim == 1:
        flat_index, size, out_shape = bin_index, n_bins, (n_bins,)
    else:
        k = bin_index.shape[1]
        offsets = torch.arange(k, device=device).mul_(n_bins)
        flat_index = (bin_index + offsets).reshape(-1)
        conf, acc, ones = conf.reshape(-1), acc.reshape(-1), ones.reshape(-1)
        size, out_shape = k * n_bins, (k, n_bins)
    stacked = torch.stack([ones.reshape(-1), conf.reshape(-1), acc.reshape(-1)])
    sums = torch.zeros(3, size, dtype=dtype, device=device)
    sums.index_add_(1, flat_index.reshape(-1), stacked)
    return BinSums(*(s.reshape(out_shape) for s in sums))
