r"""Calibration of independent sigmoid outputs: binary ECE and per-label (marginal) ECE.

A binary head gives one probability :math:`p_i = P(y_i = 1)` per item, a multi-label head one
per (item, label). Each column is calibrated when :math:`P(y = 1 \mid p) = p`, so its ECE bins
the probability itself (not the top-label confidence) against the frequency of positives:

.. math:: \mathrm{ECE}_\ell = \sum_b \frac{|B_{b\ell}|}{N_\ell}\,
          \bigl|\overline{y}(B_{b\ell}) - \overline{p}(B_{b\ell})\bigr|,\qquad
          B_{b\ell} = \{i : \tfrac{b-1}{B} < p_{i\ell} \le \tfrac{b}{B}\}

(the marginal, or label-wise, calibration error of Kull et al. 2019 for a multi-label head;
torchmetrics' ``binary_calibration_error`` for one column). The per-label errors are averaged
over labels (``average="macro"``) or returned (``average="none"``). Bins and conventions are those
of :func:`focalcal.metrics.ece` (the same binning primitive); entries whose label equals
``ignore_index`` are left out of their column.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from focalcal._validation import _describe, as_tensor, check_choice, check_finite, restore_kind
from focalcal.metrics._core import (
    Convention,
    MetricValue,
    binned_calibration_error,
    check_binning,
    top_label_update,
)
from focalcal.metrics.binning import BinSums
from focalcal.metrics.streaming import _PreparedInputs

__all__ = ["BinaryECE", "MultilabelECE", "binary_ece", "multilabel_ece"]

AVERAGES = ("macro", "none")


def prepare_labelwise(
    probs: Any,
    labels: Any,
    ndim: int,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> tuple[Tensor, Tensor, Tensor, bool]:
    """``(p, y, valid, was_numpy)``: probabilities, 0/1 labels (float) and the counted entries.

    ``probs`` is (N,) for ``ndim=1`` or (N, L) for ``ndim=2``; ``labels`` the same shape of
    0/1 values (integer, bool or float) or ``ignore_index``. Sigmoid first with ``from_logits``.
    """
    x, was_numpy = as_tensor(probs, "probs")
    y, _ = as_tensor(labels, "labels")
    expected = "(N,)" if ndim == 1 else "(N, L)"
    if not x.is_floating_point() or x.ndim != ndim or x.shape[0] == 0:
        raise ValueError(
            f"probs: expected a non-empty floating tensor of shape {expected}, got {_describe(x)}"
        )
    if y.shape != x.shape:
        raise ValueError(
            f"labels: expected the shape of probs {tuple(x.shape)}, got {tuple(y.shape)}"
        )
    y = y.to(x.device)
    valid = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
    y = torch.where(valid, y, 0).to(torch.float64)
    if validate:
        check_finite(x, "probs")
        if bool(((y != 0) & (y != 1)).any()):
            bad = sorted(set(y[(y != 0) & (y != 1)][:5].tolist()))
            ign = f" or ignore_index={ignore_index}" if ignore_index is not None else ""
            raise ValueError(f"labels: expected 0/1 values{ign}, got values {bad}")
    if from_logits:
        x = torch.sigmoid(x if x.dtype in (torch.float32, torch.float64) else x.float())
    elif validate and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(
            f"probs: expected probabilities in [0, 1], got values in [{float(x.min()):.4g}, "
            f"{float(x.max()):.4g}]. The values look like logits: pass from_logits=True."
        )
    if not bool(valid.any()):
        raise ValueError(f"labels: every entry equals ignore_index={ignore_index}; nothing to bin")
    return x, y, valid, was_numpy


def labelwise_update(
    p: Tensor, y: Tensor, valid: Tensor, n_bins: int, convention: str = "default"
) -> tuple[BinSums, Tensor]:
    """Equal-width bin sums of every column, (B,) or (L, B), and the counted entries per column."""
    sums = top_label_update(p, y, n_bins, convention, weight=valid)
    return sums, valid.sum(0, dtype=torch.float64)


def labelwise_compute(sums: BinSums, counts: Tensor, average: str) -> Tensor:
    """Per-column l1 calibration error; ``"macro"`` averages over columns with counted entries."""
    per_label = binned_calibration_error(sums, counts.clamp_min(1.0), "l1")
    if average == "none" or per_label.ndim == 0:
        return torch.where(counts > 0, per_label, torch.nan)
    return per_label[counts > 0].mean()


def _labelwise_metric(
    probs: Any,
    labels: Any,
    ndim: int,
    n_bins: int,
    from_logits: bool,
    convention: str,
    ignore_index: int | None,
    validate: bool,
    average: str = "macro",
) -> MetricValue:
    n_bins = check_binning(n_bins, convention)
    check_choice(average, "average", AVERAGES)
    p, y, valid, was_numpy = prepare_labelwise(
        probs, labels, ndim, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    sums, counts = labelwise_update(p, y, valid, n_bins, convention)
    return restore_kind(labelwise_compute(sums, counts, average), was_numpy)


def binary_ece(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""ECE of a binary classifier's positive-class probability (see the module docstring).

    Args:
        probs: (N,) probabilities :math:`P(y = 1)`, or logits with ``from_logits=True``
            (sigmoid).
        labels: (N,) 0/1 labels (integer, bool or float), or ``ignore_index``.
        n_bins, convention, validate: as :func:`focalcal.metrics.ece`.
        ignore_index: label value of the items to leave out.

    Returns:
        0-d float64 tensor in [0, 1] (numpy when ``probs`` is numpy).

    Example:
        >>> binary_ece(torch.tensor([0.9, 0.8, 0.2, 0.3]), torch.tensor([1, 0, 0, 0]), n_bins=2)
        tensor(0.3000, dtype=torch.float64)
    """
    return _labelwise_metric(
        probs, labels, 1, n_bins, from_logits, convention, ignore_index, validate
    )


def multilabel_ece(
    probs: Any,
    labels: Any,
    *,
    n_bins: int = 15,
    average: str = "macro",
    from_logits: bool = False,
    convention: Convention = "default",
    ignore_index: int | None = None,
    validate: bool = True,
) -> MetricValue:
    r"""Per-label (marginal) ECE of independent sigmoid outputs, averaged over labels.

    Args:
        probs: (N, L) probabilities :math:`P(y_{i\ell} = 1)`, or logits with
            ``from_logits=True`` (sigmoid, not softmax).
        labels: (N, L) 0/1 labels, or ``ignore_index`` for entries to leave out.
        average: ``"macro"`` (mean over the labels that have a counted entry) or ``"none"``
            ((L,) values; NaN for a label whose entries are all ignored).
        n_bins, convention, validate: as :func:`focalcal.metrics.ece`.

    Example:
        >>> p = torch.tensor([[0.9, 0.2], [0.8, 0.3], [0.2, 0.7], [0.3, 0.6]])
        >>> y = torch.tensor([[1, 0], [0, 0], [0, 1], [0, 1]])
        >>> multilabel_ece(p, y, n_bins=2, average="none")
        tensor([0.3000, 0.3000], dtype=torch.float64)
    """
    return _labelwise_metric(
        probs, labels, 2, n_bins, from_logits, convention, ignore_index, validate, average
    )


class _LabelwiseECE(_PreparedInputs):
    """Streaming label-wise ECE: float64 bin sums per column and the counted entries."""

    ndim: int = 1

    def __init__(
        self, n_bins: int = 15, convention: str = "default", average: str = "macro", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.n_bins = check_binning(n_bins, convention)
        self.convention = convention
        self.average = check_choice(average, "average", AVERAGES)
        self._add_bin_states("", (0,))  # (B,) or (L, B), sized at the first update
        self.add_state("counts", torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: Any, labels: Any) -> None:
        p, y, valid, _ = prepare_labelwise(
            probs,
            labels,
            self.ndim,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            validate=self.validate,
        )
        sums, counts = labelwise_update(
            p.to(self.device), y.to(self.device), valid.to(self.device), self.n_bins,
            self.convention,
        )  # fmt: skip
        self._accumulate_bins("", sums)
        self.counts = counts if self.counts.numel() == 0 else self.counts + counts

    def compute(self) -> Tensor:
        return labelwise_compute(self._bin_state(""), self.counts, self.average)


class BinaryECE(_LabelwiseECE):
    """Streaming :func:`binary_ece` (state: 3 × B float64 bin sums and a count).

    Example:
        >>> metric = BinaryECE(n_bins=2)
        >>> metric.update(torch.tensor([0.9, 0.8]), torch.tensor([1, 0]))
        >>> metric.update(torch.tensor([0.2, 0.3]), torch.tensor([0, 0]))
        >>> metric.compute()
        tensor(0.3000, dtype=torch.float64)
    """

    ndim = 1


class MultilabelECE(_LabelwiseECE):
    """Streaming :func:`multilabel_ece` (state: 3 × L × B float64 bin sums and L counts).

    Example:
        >>> metric = MultilabelECE(n_bins=2, from_logits=True)
        >>> metric.update(torch.randn(8, 3), torch.randint(0, 2, (8, 3)))
        >>> metric.compute().shape
        torch.Size([])
    """

    ndim = 2
