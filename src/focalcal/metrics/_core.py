r"""Shared core of the metrics: input preparation, row chunks, sufficient statistics and compute.

The functional metrics, the streaming classes, the bootstrap, the smooth ECE, temperature scaling
and the reliability diagrams all go through these functions, so each convention rule has one
home here:

* :func:`width_edges` and :func:`top_label_sums`: how ``convention`` bins (float32 ``linspace``
  edges compared in float32, and the lowest edge dropped, under ``"official"``);
* :func:`class_average`: which classes Classwise-ECE averages over (all C, or ``0..max(label)``
  under ``"official"``).

Everything here is internal; the public metrics are in :mod:`focalcal.metrics.functional`.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from focalcal._validation import (
    as_tensor,
    check_bool,
    check_choice,
    check_label_range,
    check_logits,
    check_n_bins,
    check_probabilities,
    check_targets,
    flatten_dense,
)
from focalcal.metrics.binning import (
    BinSums,
    above_lowest_edge,
    assign_bins,
    bin_sums,
    classwise_bin_sums,
    equal_mass_edges,
    equal_width_edges,
)

Convention = Literal["default", "official"]
CONVENTIONS: tuple[str, ...] = ("default", "official")
MetricValue = Tensor | np.ndarray  # float64 0-d tensor, or 0-d array for numpy inputs
Norm = Literal["l1", "l2", "max", "mean"]

# Rows are processed in chunks of ~8 MB (float32) on CPU: each chunk stays in cache across the
# softmax, max, binning and sums that follow, instead of streaming N x C through memory each time.
CHUNK_ELEMENTS = 1 << 21


# ----------------------------------------------------------------------------------------------
# Input preparation
# ----------------------------------------------------------------------------------------------


def check_binning(n_bins: int, convention: str) -> int:
    """Validated ``n_bins`` (an integer >= 1); ``convention`` must be a known one."""
    check_choice(convention, "convention", CONVENTIONS)
    return check_n_bins(n_bins)


def prepare_inputs(
    probs: Any,
    labels: Any,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> tuple[Tensor, Tensor, bool]:
    """Validate and flatten ``(probs, labels)``; returns ``(x (M, C), labels (M,), was_numpy)``.

    ``x`` is still logits when ``from_logits`` (convert with :func:`to_probs`). Dense inputs are
    flattened per item and items labelled ``ignore_index`` are dropped. Raises ``ValueError`` /
    ``TypeError`` naming the argument for wrong shapes or dtypes, NaN/inf, rows that are not
    probabilities (hinting ``from_logits=True``) and empty inputs; ``validate=False`` skips those
    value checks. Labels out of range are refused even then: they index per-class sums, and one
    min/max over the labels is cheap next to a pass over the probabilities.
    """
    check_bool(from_logits, "from_logits")
    check_bool(validate, "validate")
    x, was_numpy = as_tensor(probs, "probs")
    y, _ = as_tensor(labels, "labels")
    check_logits(x, "probs", validate=validate and from_logits)
    y = check_targets(y, x.shape, x.shape[1], "labels", validate=False)
    x, y = flatten_dense(x, y.to(device=x.device, dtype=torch.long))
    if ignore_index is not None:
        keep = y != ignore_index
        if not bool(keep.all()):
            x, y = x[keep], y[keep]
    if x.shape[0] == 0:
        extra = f" after dropping ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(f"probs: expected at least one sample{extra}, got 0")
    check_label_range(y, x.shape[1], "labels", ignore_index=ignore_index)
    if validate and not from_logits:
        check_probabilities(x, "probs")
    return x, y, was_numpy


def to_probs(x: Tensor, from_logits: bool) -> Tensor:
    """Softmax over dim 1 when ``from_logits`` (in float32 at least), else ``x`` unchanged."""
    if not from_logits:
        return x
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return torch.softmax(x, dim=1, dtype=dtype)


def top_label(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Top-label confidence ``max_c p_c`` (N,) and correctness ``argmax == label`` (N,) bool."""
    confidence, prediction = probs.max(dim=1)
    return confidence, prediction == labels


def row_chunks(x: Tensor) -> list[slice]:
    """Row slices of ``x`` of ~:data:`CHUNK_ELEMENTS` elements on CPU; one slice elsewhere."""
    n = x.shape[0]
    rows = n if x.device.type != "cpu" else max(1, CHUNK_ELEMENTS // max(1, x[0].numel()))
    return [slice(start, start + rows) for start in range(0, n, rows)]


def prob_chunks(x: Tensor, labels: Tensor, from_logits: bool) -> Iterator[tuple[Tensor, Tensor]]:
    """Row chunks ``(probs, labels)`` of ``(x, labels)`` (:func:`row_chunks`), softmax per chunk."""
    for rows in row_chunks(x):
        yield to_probs(x[rows], from_logits), labels[rows]


def sum_over_chunks(
    x: Tensor, labels: Tensor, from_logits: bool, update: Callable[[Tensor, Tensor], Any]
) -> Any:
    """``sum(update(probs_chunk, labels_chunk))`` over :func:`prob_chunks` (tensors, BinSums)."""
    return functools.reduce(
        operator.add, (update(p, y) for p, y in prob_chunks(x, labels, from_logits))
    )


def top_label_pairs(x: Tensor, labels: Tensor, from_logits: bool) -> tuple[Tensor, Tensor]:
    """Top-label (confidence, correct) of all rows, computed chunk by chunk."""
    pairs = [top_label(p, y) for p, y in prob_chunks(x, labels, from_logits)]
    if len(pairs) == 1:
        return pairs[0]
    return torch.cat([c for c, _ in pairs]), torch.cat([k for _, k in pairs])


def label_log_prob(x: Tensor, labels: Tensor, from_logits: bool) -> Tensor:
    """float64 (N,) ``log p_y``: ``z_y - logsumexp(z)`` from logits (no underflow), else ``log p_y``."""
    if not from_logits:
        return x.gather(1, labels.unsqueeze(1)).squeeze(1).double().log()
    parts = [
        x[rows].gather(1, labels[rows].unsqueeze(1)).squeeze(1).double()
        - torch.logsumexp(x[rows], dim=1).double()
        for rows in row_chunks(x)
    ]
    return torch.cat(parts)


def brier_per_sample(probs: Tensor, labels: Tensor) -> Tensor:
    r"""float64 (N,) :math:`\sum_c (p_c - 1[c = y])^2 = \sum_c p_c^2 - 2 p_y + 1`."""
    p_label = probs.gather(1, labels.unsqueeze(1)).squeeze(1).double()
    half = probs.dtype in (torch.float16, torch.bfloat16)  # a half-precision norm loses digits
    squared_norm = torch.linalg.vector_norm(probs, dim=1, dtype=torch.float32 if half else None)
    squared_norm = squared_norm.double().square()
    return squared_norm - 2 * p_label + 1


# ----------------------------------------------------------------------------------------------
# The conventions' rules, each written once
# ----------------------------------------------------------------------------------------------


def width_edges(n_bins: int, convention: str, device: torch.device) -> Tensor:
    """Equal-width edges: float32 ``linspace`` (official) or exact ``k/B`` kept in float64."""
    official = convention == "official"
    dtype = torch.float32 if official else torch.float64
    return equal_width_edges(n_bins, dtype=dtype, device=device, official=official)


def top_label_sums(
    confidence: Tensor,
    correct: Tensor,
    edges: Tensor,
    convention: str,
    *,
    weight: Tensor | None = None,
) -> BinSums:
    """Per-bin sums of the top-label pairs (N,) against ``edges`` under ``convention``.

    The default compares exactly against the edges and bins every sample; the official
    convention compares in the confidences' dtype and leaves samples at the lowest edge in no
    bin (they still count in N). ``edges`` (B + 1,) gives (B,) sums, or (R, B) with an (R, N)
    ``weight``; ``edges`` (R, B + 1), one edge set per weighting, gives (R, B).
    """
    n_bins = edges.shape[-1] - 1
    official = convention == "official"
    index = assign_bins(confidence, edges, exact=not official)
    if official:
        kept = above_lowest_edge(confidence, edges)
        weight = kept if weight is None else weight * kept
    if edges.ndim == 1:
        return bin_sums(index, confidence, correct, n_bins, weight=weight)
    # one edge set per weighting: the R weightings become R columns of (N, R) items
    r = edges.shape[0]
    columns = (t.expand(r, -1).T for t in (index, confidence, correct))
    weight = torch.ones_like(index, dtype=torch.float64) if weight is None else weight
    return bin_sums(*columns, n_bins, weight=weight.expand(r, -1).T)


def top_label_update(
    confidence: Tensor,
    correct: Tensor,
    n_bins: int,
    convention: str = "default",
    *,
    weight: Tensor | None = None,
) -> BinSums:
    """Equal-width per-bin sums (B,) of the top-label pairs; (R, B) for an (R, N) ``weight``."""
    edges = width_edges(n_bins, convention, confidence.device)
    return top_label_sums(confidence, correct, edges, convention, weight=weight)


def classwise_update(
    probs: Tensor,
    labels: Tensor,
    n_bins: int,
    convention: str = "default",
    *,
    weight: Tensor | None = None,
) -> BinSums:
    """Equal-width per-class, per-bin sums (C, B) for Classwise-ECE under ``convention``."""
    official = convention == "official"
    edges = width_edges(n_bins, convention, probs.device)
    return classwise_bin_sums(
        probs, labels, edges, exact=not official, exclude_lowest=official, weight=weight
    )


def class_average(per_class: Tensor, max_label: Tensor | int, convention: str) -> Tensor:
    """Mean of ``per_class`` (..., C) over the classes: all C, or ``0..max_label`` (official).

    ``max_label`` is the largest label seen: an int, or a tensor of the leading shape (one per
    bootstrap resample, or the streaming state).
    """
    if convention != "official":
        return per_class.mean(-1)
    classes = torch.arange(per_class.shape[-1], device=per_class.device)
    keep = classes <= torch.as_tensor(max_label, device=per_class.device).unsqueeze(-1)
    return torch.where(keep, per_class, 0).sum(-1) / keep.sum(-1)


def binned_calibration_error(sums: BinSums, n_total: Tensor | float, norm: Norm = "l1") -> Tensor:
    r"""Calibration error from per-bin sums, over the last dim.

    With :math:`n_b` the (weighted) count, :math:`\mathrm{conf}_b`, :math:`\mathrm{acc}_b` the bin
    means and :math:`N` the total (which, under the official convention, includes samples that
    fell in no bin):

    .. math::
        \mathrm{l1} = \sum_b \tfrac{n_b}{N}\,|\mathrm{acc}_b - \mathrm{conf}_b|,\quad
        \mathrm{l2} = \Big(\sum_b \tfrac{n_b}{N}(\mathrm{acc}_b - \mathrm{conf}_b)^2\Big)^{1/2},\quad
        \mathrm{max} = \max_b |\mathrm{acc}_b - \mathrm{conf}_b|,\quad
        \mathrm{mean} = \frac{1}{\#\{b : n_b > 0\}}\sum_{b : n_b > 0} |\mathrm{acc}_b - \mathrm{conf}_b|

    with empty bins contributing 0 (``"mean"`` is the papers' "ACE", average over non-empty bins).
    """
    diff = sums.conf_sum - sums.acc_sum
    if norm == "l1":
        return diff.abs().sum(-1) / n_total
    safe = sums.count.clamp(min=torch.finfo(sums.count.dtype).tiny)
    nonempty = sums.count > 0
    if norm == "l2":
        return (torch.where(nonempty, diff.square() / safe, 0).sum(-1) / n_total).sqrt()
    gaps = torch.where(nonempty, diff.abs() / safe, 0)
    if norm == "mean":
        return gaps.sum(-1) / nonempty.sum(-1).clamp(min=1)
    return gaps.amax(-1)


def adaece_from_pairs(
    confidence: Tensor, correct: Tensor, n_bins: int, convention: str = "default"
) -> tuple[Tensor, Tensor, BinSums]:
    """AdaECE of per-sample pairs: ``(value, edges, sums)`` with equal-mass edges of ``confidence``."""
    edges = equal_mass_edges(confidence, n_bins)
    sums = top_label_sums(confidence, correct, edges, convention)
    return binned_calibration_error(sums, confidence.numel(), "l1"), edges, sums
