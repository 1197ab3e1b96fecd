r"""Functional calibration and accuracy metrics.

Every metric takes probabilities ``(N, C)`` and integer labels ``(N,)``, or logits with
``from_logits=True``; dense predictions ``(N, C, d1, ...)`` with labels ``(N, d1, ...)`` are
flattened per pixel and items whose label equals ``ignore_index`` are dropped. Each metric is an
*update* (sufficient statistics: per-bin sums, or per-sample pairs) followed by a *compute*; the
streaming :mod:`torchmetrics` classes in :mod:`focalcal.metrics.streaming` share the same core.

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

``validate=False`` skips the checks that cost a pass over the probabilities (finite values, rows
summing to 1); labels out of range are refused even then (one min/max over the labels).

Example:
    >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    >>> float(accuracy(p, torch.tensor([0, 1, 1])))
    0.6666666666666666
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from focalcal._validation import check_choice, restore_kind
from focalcal.metrics._core import (
    Convention,
    MetricValue,
    Norm,
    adaece_from_pairs,
    binned_calibration_error,
    brier_per_sample,
    check_binning,
    class_average,
    classwise_update,
    label_log_prob,
    prepare_inputs,
    sum_over_chunks,
    top_label,
    top_label_pairs,
    top_label_update,
    width_edges,
)

__all__ = [
    "CalibrationBins",
    "accuracy",
    "adaece",
    "brier",
    "calibration_bins",
    "classwise_ece",
    "ece",
    "error",
    "mce",
    "nll",
    "rmsce",
]


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
        validate: check values (finite, rows summing to 1); costs a pass over ``probs``. Labels
            out of range are refused either way.

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
    value, _, _ = adaece_from_pairs(confidence, correct, n_bins, convention)
    return restore_kind(value, was_numpy)


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
    return restore_kind(class_average(per_class, y.max(), convention), was_numpy)


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
    """Per-bin statistics for reliability diagrams, each float64 (see :func:`calibration_bins`).

    ``edges`` (B+1,); ``count`` (B,) samples per bin; ``proportion`` = count / N (N includes
    samples in no bin under the official convention); ``confidence`` and ``accuracy`` are the
    bin means (0 for empty bins, check ``count``); ``gap = confidence - accuracy``.

    Example:
        >>> bins = calibration_bins(torch.tensor([[0.9, 0.1]]), torch.tensor([0]), n_bins=2)
        >>> bins.count, bins.gap
        (tensor([0., 1.], dtype=torch.float64), tensor([ 0.0000, -0.1000], dtype=torch.float64))
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
        edges = width_edges(n_bins, convention, x.device).double()
        sums = top_label_update(confidence, correct, n_bins, convention)
    else:
        _, edges, sums = adaece_from_pairs(confidence, correct, n_bins, convention)
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
