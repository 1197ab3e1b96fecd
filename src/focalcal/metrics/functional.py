r"""Functional calibration and accuracy metrics.

Every metric takes probabilities ``(N, C)`` and integer labels ``(N,)``, or logits with
``from_logits=True``; dense predictions ``(N, C, d1, ...)`` with labels ``(N, d1, ...)`` are
flattened per pixel and items whose label equals ``ignore_index`` are dropped. Each metric is an
*update* (sufficient statistics: per-bin sums, or per-sample pairs) followed by a *compute*; the
streaming :mod:`torchmetrics` classes in :mod:`focalcal.metrics.streaming` reuse the same functions.

Conventions (``convention=``):

``"default"``
    Equal-width edges are exactly ``k/B``; bins are ``(lo, hi]`` with the lowest value in bin 0,
    compared exactly (a float32 confidence just above ``k/B`` is in the upper bin); every sample
    is in exactly one bin. Classwise-ECE averages over all ``C`` columns.
``"official"``
    Reproduces the papers' code (Mukhoti et al. 2020, ``Metrics/metrics.py``; identical in the
    Dual Focal Loss and AdaFocal repositories): float32 ``torch.linspace`` edges compared in
    float32; a confidence equal to the lowest edge (0 for equal-width bins, the minimum
    confidence for AdaECE's interpolated edges) is in no bin, yet still counts in ``N``;
    Classwise-ECE averages only over classes ``0..max(label)``.

All values are fractions (multiply by 100 for the papers' tables) returned as float64 0-d tensors,
or numpy scalars (0-d arrays) when the probabilities were given as numpy arrays.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from focalcal._validation import (
    as_tensor,
    check_choice,
    check_logits,
    check_n_bins,
    check_probabilities,
    check_targets,
    flatten_dense,
    restore_kind,
)
from focalcal.metrics.binning import (
    BinSums,
    assign_bins,
    bin_sums,
    classwise_bin_sums,
    edges_in_dtype,
    equal_mass_edges,
    equal_width_edges,
)

__all__ = [
    "CONVENTIONS",
    "CalibrationBins",
    "Convention",
    "accuracy",
    "adaece",
    "adaece_from_pairs",
    "binned_calibration_error",
    "brier",
    "brier_per_sample",
    "calibration_bins",
    "check_binning",
    "classwise_ece",
    "classwise_update",
    "ece",
    "error",
    "label_log_prob",
    "mce",
    "nll",
    "prepare_inputs",
    "prob_chunks",
    "rmsce",
    "row_chunks",
    "sum_over_chunks",
    "to_probs",
    "top_label",
    "top_label_pairs",
    "top_label_update",
]

Convention = Literal["default", "official"]
MetricValue = Tensor | np.ndarray  # float64 0-d tensor, or 0-d array for numpy inputs
CONVENTIONS: tuple[str, ...] = ("default", "official")
Norm = Literal["l1", "l2", "max", "mean"]


# ----------------------------------------------------------------------------------------------
# Input preparation (shared by functional metrics, streaming metrics, bootstrap and plots)
# ----------------------------------------------------------------------------------------------


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
    ``TypeError`` naming the argument for wrong shapes or dtypes, NaN/inf, labels out of range,
    rows that are not probabilities (hinting ``from_logits=True``) and empty inputs.
    """
    x, was_numpy = as_tensor(probs, "probs")
    y, _ = as_tensor(labels, "labels")
    check_logits(x, "probs", validate=validate and from_logits)
    y = check_targets(
        y, x.shape, x.shape[1], "labels", ignore_index=ignore_index, validate=validate
    ).to(device=x.device, dtype=torch.long)
    x, y = flatten_dense(x, y)
    if ignore_index is not None:
        keep = y != ignore_index
        if not bool(keep.all()):
            x, y = x[keep], y[keep]
    if x.shape[0] == 0:
        extra = f" after dropping ignore_index={ignore_index}" if ignore_index is not None else ""
        raise ValueError(f"probs: expected at least one sample{extra}, got 0")
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


CHUNK_ELEMENTS = 1 << 21  # rows are processed in chunks of ~8 MB (float32) on CPU


def row_chunks(x: Tensor) -> list[slice]:
    """Row slices of ``x`` of ~:data:`CHUNK_ELEMENTS` elements on CPU; one slice elsewhere.

    On CPU each chunk stays in cache across the softmax, max, binning and sums that follow, which
    makes a multi-metric pass over large inputs several times faster.
    """
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
    squared_norm = torch.linalg.vector_norm(probs, dim=1).double().square()
    return squared_norm - 2 * p_label + 1


def check_binning(n_bins: int, convention: str) -> int:
    """Validated ``n_bins`` (an integer >= 1); ``convention`` must be a known one."""
    check_choice(convention, "convention", CONVENTIONS)
    return check_n_bins(n_bins)


# ----------------------------------------------------------------------------------------------
# Updates (sufficient statistics) and compute
# ----------------------------------------------------------------------------------------------


def _width_edges(n_bins: int, official: bool, device: torch.device) -> Tensor:
    """float32 ``linspace`` edges (official) or exact ``k/B`` edges kept in float64 (default)."""
    dtype = torch.float32 if official else torch.float64
    return equal_width_edges(n_bins, dtype=dtype, device=device, official=official)


def top_label_update(
    confidence: Tensor,
    correct: Tensor,
    n_bins: int,
    convention: str = "default",
    *,
    weight: Tensor | None = None,
) -> BinSums:
    """Equal-width per-bin sums (B,) of the top-label pairs under ``convention``.

    ``weight`` (N,) or (R, N) weights the samples (a leading R dimension is added for (R, N)).
    """
    official = convention == "official"
    edges = _width_edges(n_bins, official, confidence.device)
    index = assign_bins(confidence, edges, exact=not official)
    if official:  # conf == 0 falls in no bin in the papers' code (but still counts in N)
        in_bin = confidence > edges_in_dtype(edges[:1], confidence.dtype)
        if not bool(in_bin.all()):
            weight = in_bin if weight is None else weight * in_bin
    return bin_sums(index, confidence, correct, n_bins, weight=weight)


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
    edges = _width_edges(n_bins, official, probs.device)
    return classwise_bin_sums(
        probs, labels, edges, exact=not official, exclude_lowest=official, weight=weight
    )


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
    confidence: Tensor,
    correct: Tensor,
    n_bins: int,
    convention: str = "default",
    *,
    with_bins: bool = False,
) -> Tensor | tuple[Tensor, Tensor, BinSums]:
    """AdaECE from per-sample pairs: equal-mass edges of ``confidence``, then the l1 error.

    Returns the value, or ``(value, edges, sums)`` with ``with_bins``.
    """
    edges = equal_mass_edges(confidence, n_bins)
    official = convention == "official"
    index = assign_bins(confidence, edges, exact=not official)
    weight = None
    if official:  # samples equal to the minimum confidence fall in no bin (papers' code)
        weight = confidence > edges_in_dtype(edges[:1], confidence.dtype)
    sums = bin_sums(index, confidence, correct, n_bins, weight=weight)
    value = binned_calibration_error(sums, confidence.numel(), "l1")
    return (value, edges, sums) if with_bins else value


def _top_label_metric(
    probs: Any,
    labels: Any,
    norm: Norm,
    n_bins: int,
    from_logits: bool,
    convention: str,
    ignore_index: int | None,
    validate: bool,
) -> MetricValue:
    n_bins = check_binning(n_bins, convention)
    x, y, was_numpy = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    sums = sum_over_chunks(
        x, y, from_logits, lambda p, t: top_label_update(*top_label(p, t), n_bins, convention)
    )
    return restore_kind(binned_calibration_error(sums, y.numel(), norm), was_numpy)


# ----------------------------------------------------------------------------------------------
# Public functional metrics
# ----------------------------------------------------------------------------------------------


def ece(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Expected Calibration Error of the top label with ``n_bins`` equal-width bins.

    .. math::
        \mathrm{ECE} = \sum_{b=1}^{B} \frac{|B_b|}{N}\,
        \big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|,\qquad
        B_b = \{i : \tfrac{b-1}{B} < \max_c p_{ic} \le \tfrac{b}{B}\}

    Guo et al. 2017; Mukhoti et al. 2020 (``ECELoss``). See the module docstring for
    ``convention``.

    Args:
        probs: (N, C) probabilities, or logits with ``from_logits=True``; (N, C, d1, ...) dense.
        labels: (N,) or (N, d1, ...) integer class indices.
        n_bins: number of bins B >= 1.
        from_logits: apply a softmax over dim 1 first.
        convention: ``"default"`` or ``"official"``.
        ignore_index: label value of items to drop (e.g. 255 in segmentation).
        validate: check values (finite, probabilities, label range); costs a device sync.

    Returns:
        0-d float64 tensor in [0, 1] (numpy when ``probs`` is numpy).

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
        >>> ece(p, torch.tensor([0, 1, 1]), n_bins=4)  # (2/3)·|0.85 - 1| + (1/3)·|0.6 - 0|
        tensor(0.3000, dtype=torch.float64)
    """
    return _top_label_metric(
        probs, labels, "l1", n_bins, from_logits, convention, ignore_index, validate
    )


def mce(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Maximum Calibration Error: the largest bin gap, empty bins counting 0.

    .. math:: \mathrm{MCE} = \max_b \big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big|

    Naeini et al. 2015; Mukhoti et al. 2020 (``maximum_calibration_error``). Arguments as
    :func:`ece`.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
        >>> mce(p, torch.tensor([0, 1, 1]), n_bins=4)
        tensor(0.6000, dtype=torch.float64)
    """
    return _top_label_metric(
        probs, labels, "max", n_bins, from_logits, convention, ignore_index, validate
    )


def rmsce(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Root-mean-square (L2) calibration error over equal-width bins.

    .. math::
        \mathrm{RMSCE} = \Big(\sum_b \frac{|B_b|}{N}
        \big(\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big)^2\Big)^{1/2}

    Mukhoti et al. 2020 (``l2_error``). Arguments as :func:`ece`.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
        >>> rmsce(p, torch.tensor([0, 1, 1]), n_bins=4)  # sqrt((2/3)·0.15² + (1/3)·0.6²)
        tensor(0.3674, dtype=torch.float64)
    """
    return _top_label_metric(
        probs, labels, "l2", n_bins, from_logits, convention, ignore_index, validate
    )


def adaece(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Adaptive ECE: the ECE formula over ``n_bins`` equal-mass bins of the top-label confidence.

    Edges interpolate the sorted confidences :math:`s` at fractional ranks
    :math:`r_b = \min(bN/B, N-1)` (:func:`~focalcal.metrics.binning.equal_mass_edges`), then

    .. math::
        \mathrm{AdaECE} = \sum_b \frac{|B_b|}{N}\big|\mathrm{acc}(B_b)-\mathrm{conf}(B_b)\big|,
        \qquad B_b = \{i : e_{b-1} < \mathrm{conf}_i \le e_b\}

    Nguyen & O'Connor 2015; Mukhoti et al. 2020 (``AdaptiveECELoss``). The official convention
    leaves samples equal to the minimum confidence in no bin (so one sample, or all-equal
    confidences, give 0); the default puts them in the first bin. Arguments as :func:`ece`.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
        >>> adaece(p, torch.tensor([0, 1, 1, 1]), n_bins=2)  # bins {.6,.7,.8}, {.9}
        tensor(0.0500, dtype=torch.float64)
    """
    n_bins = check_binning(n_bins, convention)
    x, y, was_numpy = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    confidence, correct = top_label_pairs(x, y, from_logits)
    value = adaece_from_pairs(confidence, correct, n_bins, convention)
    return restore_kind(value, was_numpy)  # type: ignore[arg-type]


def classwise_ece(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Classwise ECE: the ECE of every class-probability column, averaged over classes.

    .. math::
        \mathrm{CW\text{-}ECE} = \frac{1}{K}\sum_{c=1}^{K}\sum_b \frac{|B_{b,c}|}{N}
        \big|\mathrm{freq}_c(B_{b,c}) - \mathrm{conf}_c(B_{b,c})\big|

    where :math:`B_{b,c}` holds the samples whose :math:`p_{ic}` lies in bin b and
    :math:`\mathrm{freq}_c` is the fraction of them labelled c. Kull et al. 2019; Mukhoti et al.
    2020 (``ClasswiseECELoss``). ``K = C`` by default; the official convention uses
    ``K = max(label) + 1`` (classes above the largest label are silently dropped there).
    Arguments as :func:`ece`.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
        >>> classwise_ece(p, torch.tensor([0, 1, 1]), n_bins=4)
        tensor(0.3000, dtype=torch.float64)
    """
    n_bins = check_binning(n_bins, convention)
    x, y, was_numpy = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    sums = sum_over_chunks(
        x, y, from_logits, lambda p, t: classwise_update(p, t, n_bins, convention)
    )
    per_class = binned_calibration_error(sums, y.numel(), "l1")
    if convention == "official":
        per_class = per_class[: int(y.max()) + 1]
    return restore_kind(per_class.mean(), was_numpy)


def nll(
    probs: Any,
    labels: Any,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Mean negative log-likelihood of the labels, :math:`-\frac1N\sum_i \log p_{i,y_i}`.

    From logits it uses ``log_softmax`` (= ``nn.CrossEntropyLoss()``); from probabilities a zero
    label probability gives ``inf`` (the correct value), not a clipped number.

    Example:
        >>> nll(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([0]), from_logits=True)
        tensor(0.4076, dtype=torch.float64)
    """
    x, y, was_numpy = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    value = -label_log_prob(x, y, from_logits).mean()
    return restore_kind(value, was_numpy)


def brier(
    probs: Any,
    labels: Any,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Multiclass Brier score, summed over classes and averaged over samples.

    .. math:: \mathrm{BS} = \frac1N\sum_i\sum_c (p_{ic} - \mathbb 1[c = y_i])^2 \in [0, 2]

    Brier 1950; the Dual Focal Loss code's ``BS`` (not divided by C).

    Example:
        >>> brier(torch.tensor([[0.75, 0.25]]), torch.tensor([0]))
        tensor(0.1250, dtype=torch.float64)
    """
    x, y, was_numpy = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    total = sum_over_chunks(x, y, from_logits, lambda p, t: brier_per_sample(p, t).sum())
    return restore_kind(total / y.numel(), was_numpy)


def accuracy(
    probs: Any,
    labels: Any,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Top-1 accuracy :math:`\frac1N\sum_i \mathbb 1[\arg\max_c p_{ic} = y_i]`.

    Example:
        >>> accuracy(torch.tensor([[0.9, 0.1], [0.6, 0.4]]), torch.tensor([0, 1]))
        tensor(0.5000, dtype=torch.float64)
    """
    x, y, was_numpy = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    value = (x.argmax(dim=1) == y).double().mean()
    return restore_kind(value, was_numpy)


def error(
    probs: Any,
    labels: Any,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Top-1 error, :math:`1 - \mathrm{accuracy}`.

    Example:
        >>> error(torch.tensor([[0.9, 0.1], [0.6, 0.4]]), torch.tensor([0, 1]))
        tensor(0.5000, dtype=torch.float64)
    """
    return 1 - accuracy(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )


class CalibrationBins(NamedTuple):
    """Per-bin statistics for reliability diagrams, each float64.

    ``edges`` (B+1,); ``count`` (B,) samples per bin; ``proportion`` = count / N (N includes
    samples in no bin under the official convention); ``confidence`` and ``accuracy`` are the
    bin means (0 for empty bins, check ``count``); ``gap = confidence - accuracy``.
    """

    edges: Tensor
    count: Tensor
    proportion: Tensor
    confidence: Tensor
    accuracy: Tensor
    gap: Tensor


def calibration_bins(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    strategy: Literal["width", "mass"] = "width",
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> CalibrationBins:
    r"""Per-bin count, mean confidence and accuracy of the top label, for reliability diagrams.

    ``strategy="width"`` uses the equal-width bins of :func:`ece`, ``"mass"`` the equal-mass bins
    of :func:`adaece`; ``sum(proportion * |gap|)`` equals that metric.

    .. math::
        \mathrm{conf}_b = \frac{1}{|B_b|}\sum_{i\in B_b} \max_c p_{ic},\qquad
        \mathrm{acc}_b = \frac{1}{|B_b|}\sum_{i\in B_b} \mathbb 1[\hat y_i = y_i]

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
        >>> calibration_bins(p, torch.tensor([0, 1, 1]), n_bins=4).accuracy
        tensor([0., 0., 0., 1.], dtype=torch.float64)
    """
    n_bins = check_binning(n_bins, convention)
    check_choice(strategy, "strategy", ("width", "mass"))
    x, y, _ = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    confidence, correct = top_label_pairs(x, y, from_logits)
    if strategy == "width":
        edges = _width_edges(n_bins, convention == "official", x.device).double()
        sums = top_label_update(confidence, correct, n_bins, convention)
    else:
        _, edges, sums = adaece_from_pairs(  # type: ignore[misc]
            confidence, correct, n_bins, convention, with_bins=True
        )
    safe = sums.count.clamp(min=1)
    conf_mean = torch.where(sums.count > 0, sums.conf_sum / safe, 0)
    acc_mean = torch.where(sums.count > 0, sums.acc_sum / safe, 0)
    return CalibrationBins(
        edges=edges,
        count=sums.count,
        proportion=sums.count / confidence.numel(),
        confidence=conf_mean,
        accuracy=acc_mean,
        gap=conf_mean - acc_mean,
    )
