r"""Streaming (``torchmetrics.Metric``) versions of the calibration metrics.

Each class is a thin shell around the functional core of :mod:`focalcal.metrics.functional`:
``update`` accumulates sufficient statistics, ``compute`` turns them into the value, and
distributed sync is exact (per-bin sums are float64 and reduced with ``sum``; per-sample pairs are
concatenated). State size:

====================================== ==============================================
metric                                 state
====================================== ==============================================
``ECE``, ``MCE``, ``RMSCE``            3 × B float64 bin sums + N
``ClasswiseECE``                       3 × C × B float64 bin sums + N + max label
``AdaECE``, ``SmoothECE``              one (float32 confidence, uint8 correct) pair per sample
``NLL``, ``Brier``, ``Accuracy``       two float64 scalars
``CalibrationMetrics``                 all of the above, one softmax/max per batch
====================================== ==============================================

The class count is fixed by ``num_classes`` or by the first ``update`` (for the metrics with
per-class state); a later batch with another count, or ``compute()`` before any ``update``, is a
clear error. ``reset()`` empties a metric, class count included.

Example:
    >>> import torch
    >>> metric = ECE(n_bins=15, from_logits=True)
    >>> for logits, labels in [(torch.randn(8, 3), torch.randint(0, 3, (8,)))] * 2:
    ...     metric.update(logits, labels)
    >>> value = metric.compute()  # same as ece() on the concatenated batches
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from focalcal._validation import check_bool, check_n_bins
from focalcal.metrics._core import (
    adaece_from_pairs,
    binned_calibration_error,
    brier_per_sample,
    check_binning,
    class_average,
    classwise_update,
    label_log_prob,
    prepare_inputs,
    prob_chunks,
    row_chunks,
    sum_over_chunks,
    to_probs,
    top_label,
    top_label_pairs,
    top_label_update,
)
from focalcal.metrics.binning import BinSums
from focalcal.metrics.smooth import _smooth_ece_from_pairs

__all__ = [
    "ECE",
    "MCE",
    "NLL",
    "RMSCE",
    "Accuracy",
    "AdaECE",
    "Brier",
    "CalibrationMetrics",
    "ClasswiseECE",
    "SmoothECE",
]

_F64 = torch.float64


class _PreparedInputs(Metric):
    """Shared constructor arguments, input preparation and the state checks."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        *,
        from_logits: bool = False,
        ignore_index: int | None = None,
        validate: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.ignore_index = ignore_index
        self.validate = check_bool(validate, "validate")

    def _inputs(self, probs: Any, labels: Any) -> tuple[Tensor, Tensor]:
        """(logits or probs (M, C), labels (M,)) on the metric's device, validated, flattened."""
        x, y, _ = prepare_inputs(
            probs,
            labels,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            validate=self.validate,
        )
        return x.to(self.device), y.to(self.device)

    def _add_bin_states(self, prefix: str, shape: tuple[int, ...]) -> None:
        for field in BinSums._fields:
            self.add_state(f"{prefix}{field}", torch.zeros(shape, dtype=_F64), dist_reduce_fx="sum")

    def _add_class_states(self, prefix: str, num_classes: int | None, n_bins: int) -> None:
        """Per-class bin sums (C, B), sized now or (``num_classes=None``) at the first update."""
        self._classes_from = "num_classes" if num_classes is not None else "the first update"
        shape = (0,) if num_classes is None else (check_n_bins(num_classes, "num_classes"), n_bins)
        self._add_bin_states(prefix, shape)
        self.add_state("max_label", torch.tensor(-1), dist_reduce_fx="max")

    def _check_num_classes(self, prefix: str, x: Tensor) -> None:
        """The per-class state fixes the class count: refuse a batch with another one."""
        state = getattr(self, f"{prefix}count")
        if state.numel() and state.shape[0] != x.shape[1]:
            raise ValueError(
                f"probs: expected {state.shape[0]} classes (set by {self._classes_from}), got "
                f"shape {tuple(x.shape)}; use one {type(self).__name__} per label set, or "
                "reset() it first"
            )

    def _check_not_empty(self, n_samples: Tensor | int) -> None:
        """``compute()`` needs data: a clear error instead of 0/0 or an empty concatenation."""
        if int(n_samples) == 0:
            raise RuntimeError(
                f"{type(self).__name__}.compute(): no samples yet; call update(probs, labels) "
                "before compute() (reset() empties the metric)"
            )

    def _bin_state(self, prefix: str) -> BinSums:
        return BinSums(*(getattr(self, f"{prefix}{field}") for field in BinSums._fields))

    def _accumulate_bins(self, prefix: str, sums: BinSums) -> None:
        for field, value in zip(BinSums._fields, sums, strict=True):
            name = f"{prefix}{field}"
            state = getattr(self, name)
            if state.numel() == 0:  # lazily sized (number of classes known at first update)
                state = torch.zeros_like(value)
            setattr(self, name, state + value)


def _binned_args(n_bins: int, convention: str) -> tuple[int, str]:
    return check_binning(n_bins, convention), convention


class _TopLabelBinned(_PreparedInputs):
    """Equal-width top-label bin sums; subclasses choose the norm."""

    norm: str = "l1"

    def __init__(self, n_bins: int = 15, convention: str = "default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_bins, self.convention = _binned_args(n_bins, convention)
        self._add_bin_states("", (self.n_bins,))
        self.add_state("total", torch.zeros((), dtype=_F64), dist_reduce_fx="sum")

    def update(self, probs: Any, labels: Any) -> None:
        x, y = self._inputs(probs, labels)
        sums = sum_over_chunks(
            x,
            y,
            self.from_logits,
            lambda p, t: top_label_update(*top_label(p, t), self.n_bins, self.convention),
        )
        self._accumulate_bins("", sums)
        self.total += y.numel()

    def compute(self) -> Tensor:
        self._check_not_empty(self.total)
        return binned_calibration_error(self._bin_state(""), self.total, self.norm)  # type: ignore[arg-type]


class ECE(_TopLabelBinned):
    """Streaming :func:`focalcal.metrics.ece` (state: B float64 bin sums).

    Example:
        >>> m = ECE(n_bins=4)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.6, 0.4]]), torch.tensor([0, 1]))
        >>> m.update(torch.tensor([[0.2, 0.8]]), torch.tensor([1]))
        >>> m.compute()  # = ece() of the three rows
        tensor(0.3000, dtype=torch.float64)
    """

    norm = "l1"


class MCE(_TopLabelBinned):
    """Streaming :func:`focalcal.metrics.mce`.

    Example:
        >>> m = MCE(n_bins=4)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), torch.tensor([0, 1, 1]))
        >>> m.compute()
        tensor(0.6000, dtype=torch.float64)
    """

    norm = "max"


class RMSCE(_TopLabelBinned):
    """Streaming :func:`focalcal.metrics.rmsce`.

    Example:
        >>> m = RMSCE(n_bins=4)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), torch.tensor([0, 1, 1]))
        >>> m.compute()
        tensor(0.3674, dtype=torch.float64)
    """

    norm = "l2"


class ClasswiseECE(_PreparedInputs):
    """Streaming :func:`focalcal.metrics.classwise_ece` (state: C × B float64 bin sums).

    ``num_classes`` sizes the state up front; when omitted it is sized at the first update (then
    every process must update at least once before a distributed ``compute``).

    Example:
        >>> m = ClasswiseECE(n_bins=4, num_classes=2)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), torch.tensor([0, 1, 1]))
        >>> m.compute()
        tensor(0.3000, dtype=torch.float64)
    """

    def __init__(
        self,
        n_bins: int = 15,
        convention: str = "default",
        num_classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_bins, self.convention = _binned_args(n_bins, convention)
        self._add_class_states("", num_classes, self.n_bins)
        self.add_state("total", torch.zeros((), dtype=_F64), dist_reduce_fx="sum")

    def update(self, probs: Any, labels: Any) -> None:
        x, y = self._inputs(probs, labels)
        self._check_num_classes("", x)
        sums = sum_over_chunks(
            x,
            y,
            self.from_logits,
            lambda p, t: classwise_update(p, t, self.n_bins, self.convention),
        )
        self._accumulate_bins("", sums)
        self.total += y.numel()
        self.max_label = torch.maximum(self.max_label, y.max())

    def compute(self) -> Tensor:
        self._check_not_empty(self.total)
        per_class = binned_calibration_error(self._bin_state(""), self.total, "l1")
        return class_average(per_class, self.max_label, self.convention)


class _TopLabelPairs(_PreparedInputs):
    """Keeps one (float32 confidence, uint8 correct) pair per sample."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("confidence", [], dist_reduce_fx="cat")
        self.add_state("correct", [], dist_reduce_fx="cat")

    def update(self, probs: Any, labels: Any) -> None:
        x, y = self._inputs(probs, labels)
        confidence, correct = top_label_pairs(x, y, self.from_logits)
        self.confidence.append(confidence.float())
        self.correct.append(correct.to(torch.uint8))

    def _pairs(self) -> tuple[Tensor, Tensor]:
        confidence = self.confidence  # a list of batches, or one tensor once synced
        self._check_not_empty(
            len(confidence) if isinstance(confidence, list) else confidence.numel()
        )
        return dim_zero_cat(self.confidence), dim_zero_cat(self.correct)


class AdaECE(_TopLabelPairs):
    """Streaming :func:`focalcal.metrics.adaece` (state: per-sample pairs, 5 bytes each).

    Example:
        >>> m = AdaECE(n_bins=2)
        >>> m.update(torch.tensor([[0.9, 0.1], [0.6, 0.4]]), torch.tensor([0, 1]))
        >>> m.update(torch.tensor([[0.2, 0.8], [0.3, 0.7]]), torch.tensor([1, 1]))
        >>> m.compute()
        tensor(0.0500, dtype=torch.float64)
    """

    def __init__(self, n_bins: int = 15, convention: str = "default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_bins, self.convention = _binned_args(n_bins, convention)

    def compute(self) -> Tensor:
        value, _, _ = adaece_from_pairs(*self._pairs(), self.n_bins, self.convention)
        return value


class SmoothECE(_TopLabelPairs):
    """Streaming :func:`focalcal.metrics.smooth_ece` (state: per-sample pairs).

    Example:
        >>> m = SmoothECE()
        >>> m.update(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]),
        ...          torch.tensor([0, 1, 1, 0]))
        >>> 0 < float(m.compute()) < 1
        True
    """

    def compute(self) -> Tensor:
        return _smooth_ece_from_pairs(*self._pairs())  # type: ignore[return-value]


class _MeanOverSamples(_PreparedInputs):
    """Sum of a per-sample quantity and the sample count."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("sum", torch.zeros((), dtype=_F64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=_F64), dist_reduce_fx="sum")

    def _per_sample(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, probs: Any, labels: Any) -> None:
        x, y = self._inputs(probs, labels)
        self.sum += self._per_sample(x, y).sum(dtype=_F64)
        self.total += y.numel()

    def compute(self) -> Tensor:
        self._check_not_empty(self.total)
        return self.sum / self.total


class NLL(_MeanOverSamples):
    """Streaming :func:`focalcal.metrics.nll`.

    Example:
        >>> m = NLL(from_logits=True)
        >>> m.update(torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([0]))
        >>> m.compute()
        tensor(0.4076, dtype=torch.float64)
    """

    def _per_sample(self, x: Tensor, y: Tensor) -> Tensor:
        return -label_log_prob(x, y, self.from_logits)


class Brier(_MeanOverSamples):
    """Streaming :func:`focalcal.metrics.brier`.

    Example:
        >>> m = Brier()
        >>> m.update(torch.tensor([[0.75, 0.25]]), torch.tensor([0]))
        >>> m.compute()
        tensor(0.1250, dtype=torch.float64)
    """

    def _per_sample(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.cat([brier_per_sample(p, t) for p, t in prob_chunks(x, y, self.from_logits)])


class Accuracy(_MeanOverSamples):
    """Streaming :func:`focalcal.metrics.accuracy` (top-1).

    Example:
        >>> m = Accuracy()
        >>> m.update(torch.tensor([[0.9, 0.1], [0.6, 0.4]]), torch.tensor([0, 1]))
        >>> m.compute()
        tensor(0.5000, dtype=torch.float64)
    """

    higher_is_better = True

    def _per_sample(self, x: Tensor, y: Tensor) -> Tensor:
        return (x.argmax(dim=1) == y).double()


class CalibrationMetrics(_PreparedInputs):
    """All calibration metrics in one pass: one softmax and one max per batch.

    ``compute()`` returns a dict with ``ece``, ``adaece``, ``classwise_ece``, ``mce``, ``rmsce``,
    ``smooth_ece`` (unless ``smooth=False``), ``nll``, ``brier``, ``accuracy`` and ``error``,
    each equal to the functional metric on all the data seen (same ``n_bins`` / ``convention``).
    The class count is fixed by ``num_classes`` or the first update.

    Example:
        >>> m = CalibrationMetrics(from_logits=True, num_classes=3)
        >>> m.update(torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0]]), torch.tensor([0, 2]))
        >>> sorted(m.compute())[:4]
        ['accuracy', 'adaece', 'brier', 'classwise_ece']
    """

    def __init__(
        self,
        n_bins: int = 15,
        convention: str = "default",
        num_classes: int | None = None,
        *,
        smooth: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_bins, self.convention = _binned_args(n_bins, convention)
        self.smooth = check_bool(smooth, "smooth")
        self._add_bin_states("top_", (self.n_bins,))
        self._add_class_states("class_", num_classes, self.n_bins)
        for name in ("total", "nll_sum", "brier_sum"):
            self.add_state(name, torch.zeros((), dtype=_F64), dist_reduce_fx="sum")
        self.add_state("confidence", [], dist_reduce_fx="cat")
        self.add_state("correct", [], dist_reduce_fx="cat")

    def update(self, probs: Any, labels: Any) -> None:
        x, y = self._inputs(probs, labels)
        self._check_num_classes("class_", x)
        for rows in row_chunks(x):  # everything per cache-sized chunk: one softmax, one max
            z, t = x[rows], y[rows]
            p = to_probs(z, self.from_logits)
            confidence, prediction = p.max(dim=1)
            correct = prediction == t
            top = top_label_update(confidence, correct, self.n_bins, self.convention)
            self._accumulate_bins("top_", top)
            self._accumulate_bins("class_", classwise_update(p, t, self.n_bins, self.convention))
            self.confidence.append(confidence.float())
            self.correct.append(correct.to(torch.uint8))
            self.brier_sum += brier_per_sample(p, t).sum()
            self.nll_sum -= self._label_log_prob(z, p, t, confidence, prediction).sum()
        self.total += y.numel()
        self.max_label = torch.maximum(self.max_label, y.max())

    def _label_log_prob(
        self, z: Tensor, p: Tensor, y: Tensor, confidence: Tensor, prediction: Tensor
    ) -> Tensor:
        """log p_y without a logsumexp pass: with k = argmax, lse = z_k - log p_k (p_k >= 1/C)."""
        if not self.from_logits:
            return label_log_prob(p, y, from_logits=False)
        z_label = z.gather(1, y.unsqueeze(1)).squeeze(1).double()
        z_top = z.gather(1, prediction.unsqueeze(1)).squeeze(1).double()
        return z_label - z_top + confidence.double().log()

    def compute(self) -> dict[str, Tensor]:
        self._check_not_empty(self.total)
        top = self._bin_state("top_")
        per_class = binned_calibration_error(self._bin_state("class_"), self.total, "l1")
        confidence, correct = dim_zero_cat(self.confidence), dim_zero_cat(self.correct)
        accuracy = top.acc_sum.sum() / self.total
        out = {
            "ece": binned_calibration_error(top, self.total, "l1"),
            "adaece": adaece_from_pairs(confidence, correct, self.n_bins, self.convention)[0],
            "classwise_ece": class_average(per_class, self.max_label, self.convention),
            "mce": binned_calibration_error(top, self.total, "max"),
            "rmsce": binned_calibration_error(top, self.total, "l2"),
            "nll": self.nll_sum / self.total,
            "brier": self.brier_sum / self.total,
            "accuracy": accuracy,
            "error": 1 - accuracy,
        }
        if self.smooth:
            out["smooth_ece"] = _smooth_ece_from_pairs(confidence, correct)
        return out  # type: ignore[return-value]
