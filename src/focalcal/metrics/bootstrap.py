r"""Bootstrap confidence intervals for any metric, and paired comparisons of two models.

A bootstrap resample draws N test items with replacement; its metric value is one draw from the
sampling distribution of the estimate. The default interval at level :math:`1-\alpha` is the
*basic* (reflected) bootstrap interval, extended where needed to contain the estimate:

.. math:: \big[\,2\hat\theta - q_{1-\alpha/2}(\hat\theta^*),\ 2\hat\theta - q_{\alpha/2}(\hat\theta^*)
          \,\big] \cup \{\hat\theta\}

(Davison & Hinkley 1997). Binned calibration errors are biased upwards, and a resample, which
duplicates items, is biased upwards again from the estimate: the textbook percentile interval
:math:`[q_{\alpha/2}, q_{1-\alpha/2}]` then adds the bias a second time, and on Classwise-ECE it
covered the population value in none of 200 synthetic test sets where the basic interval
covered it in 95% (``benchmarks/coverage.py``, :mod:`focalcal.metrics.coverage`). Near a
population value of 0 no interval of the binned estimators covers well: the estimate's bias is
then as large as its spread. ``method=`` selects ``"percentile"``, ``"bc"`` or ``"debiased"``
instead (:func:`bootstrap_interval`). Resampling is seeded and vectorised for the built-in metrics: the
per-sample bin indices are computed once and each resample enters the bin sums as a row of
multinomial counts (``weight``), so R resamples cost one batched pass instead of R metric calls.
Any other callable ``metric(probs, labels)`` is evaluated on the same resampled indices in a loop.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> probs = torch.rand(500, 3, generator=g).softmax(1)
    >>> labels = torch.randint(0, 3, (500,), generator=g)
    >>> ci = bootstrap_ci("ece", probs, labels, n_resamples=200, seed=1)
    >>> bool(ci.low <= ci.estimate <= ci.high)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from focalcal._registry import Registry
from focalcal._validation import check_bool, check_choice, check_n_bins, check_positive
from focalcal.metrics import _core
from focalcal.metrics import functional as _functional
from focalcal.metrics.binning import equal_mass_edges

__all__ = [
    "BootstrapResult",
    "PairedBootstrapResult",
    "bootstrap_ci",
    "bootstrap_interval",
    "paired_bootstrap",
]


class _Sample(NamedTuple):
    """Prepared test set: probabilities (N, C), labels (N,) and float64 ``log p_label`` (N,)
    (from the logits when given, so a saturated softmax does not turn NLL into inf)."""

    probs: Tensor
    labels: Tensor
    label_log_prob: Tensor


# A resampled statistic: (sample, weights (R, N)) -> (R,) metric values, one per weighting.
_ResampledStatistic = Callable[[_Sample, Tensor], Tensor]

_RESAMPLED: Registry[_ResampledStatistic] = Registry("bootstrap metric")
_HIGHER_IS_BETTER = frozenset({"accuracy"})  # canonical names; every other metric: lower is better
INTERVAL_METHODS = ("percentile", "basic", "bc", "debiased")
_BLOCK_ELEMENTS = 4_000_000  # resamples are processed in blocks of ~R·N <= this


class BootstrapResult(NamedTuple):
    """``estimate`` on the full data (debiased for ``method="debiased"``), the interval
    ``[low, high]`` at ``level`` (:func:`bootstrap_interval`; the default one always contains
    ``estimate``), and the ``samples`` (n_resamples,) of the resampled metric.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
        >>> r = bootstrap_ci("accuracy", p, torch.tensor([0, 1, 1]), n_resamples=50)
        >>> r.samples.shape, r.level
        (torch.Size([50]), 0.95)
    """

    estimate: float
    low: float
    high: float
    level: float
    samples: Tensor

    @property
    def bias(self) -> float:
        """Bootstrap estimate of the bias, ``mean(samples) - estimate``."""
        return float(self.samples.mean()) - self.estimate


class PairedBootstrapResult(NamedTuple):
    """``difference = metric(A) - metric(B)`` with its bootstrap interval, and ``p_value``, the
    one-sided bootstrap p-value of "A is better than B" (lower is better unless
    ``higher_is_better``): the fraction of resamples, with the +1 correction, in which A is *not*
    better. ``method`` chooses the interval as in :func:`bootstrap_ci`. Returned by
    :func:`paired_bootstrap`.

    Example:
        >>> y = torch.tensor([0, 1] * 20)
        >>> sure = torch.nn.functional.one_hot(y, 2).float() * 0.8 + 0.1
        >>> r = paired_bootstrap("accuracy", sure, sure.flip(1), y, n_resamples=50)
        >>> r.difference, r.p_value < 0.05
        (1.0, True)
    """

    difference: float
    low: float
    high: float
    level: float
    p_value: float
    samples: Tensor


def _binned(norm: _core.Norm) -> Callable[..., _ResampledStatistic]:
    def factory(n_bins: int = 15, convention: str = "default") -> _ResampledStatistic:
        n_bins = _core.check_binning(n_bins, convention)

        def statistic(s: _Sample, w: Tensor) -> Tensor:
            confidence, correct = _core.top_label(s.probs, s.labels)
            sums = _core.top_label_update(confidence, correct, n_bins, convention, weight=w)
            return _core.binned_calibration_error(sums, w.sum(1), norm)

        return statistic

    return factory


_RESAMPLED.register("ece")(_binned("l1"))
_RESAMPLED.register("mce")(_binned("max"))
_RESAMPLED.register("rmsce")(_binned("l2"))


@_RESAMPLED.register("classwise_ece")
def _classwise(n_bins: int = 15, convention: str = "default") -> _ResampledStatistic:
    n_bins = _core.check_binning(n_bins, convention)

    def statistic(s: _Sample, w: Tensor) -> Tensor:
        sums = _core.classwise_update(s.probs, s.labels, n_bins, convention, weight=w)
        per_class = _core.binned_calibration_error(sums, w.sum(1, keepdim=True), "l1")  # (R, C)
        official = convention == "official"  # only the official average needs the max label
        max_label = _resampled_max_label(s.labels, w, s.probs.shape[1]) if official else -1
        return _core.class_average(per_class, max_label, convention)

    return statistic


def _resampled_max_label(y: Tensor, w: Tensor, num_classes: int) -> Tensor:
    """(R,) largest label drawn in each resample."""
    per_class = torch.zeros(w.shape[0], num_classes, dtype=w.dtype, device=w.device)
    per_class.index_add_(1, y, w)
    classes = torch.arange(num_classes, device=w.device)
    return torch.where(per_class > 0, classes, -1).amax(1)


@_RESAMPLED.register("adaece")
def _adaece(n_bins: int = 15, convention: str = "default") -> _ResampledStatistic:
    n_bins = _core.check_binning(n_bins, convention)

    def statistic(s: _Sample, w: Tensor) -> Tensor:
        confidence, correct = _core.top_label(s.probs, s.labels)
        edges = equal_mass_edges(confidence, n_bins, counts=w)  # (R, B + 1): one set per resample
        sums = _core.top_label_sums(confidence, correct, edges, convention, weight=w)
        return _core.binned_calibration_error(sums, w.sum(1), "l1")

    return statistic


def _per_sample_mean(per_sample: Callable[[_Sample], Tensor]) -> _ResampledStatistic:
    def statistic(s: _Sample, w: Tensor) -> Tensor:
        return (w @ per_sample(s)) / w.sum(1)

    return statistic


_RESAMPLED.register("nll")(lambda: _per_sample_mean(lambda s: -s.label_log_prob))
_RESAMPLED.register("brier")(
    lambda: _per_sample_mean(lambda s: _core.brier_per_sample(s.probs, s.labels))
)
_RESAMPLED.register("accuracy")(
    lambda: _per_sample_mean(lambda s: (s.probs.argmax(1) == s.labels).to(torch.float64))
)
_RESAMPLED.register("error")(
    lambda: _per_sample_mean(lambda s: (s.probs.argmax(1) != s.labels).to(torch.float64))
)


def _metric_name(metric: str | Callable[..., Any]) -> str | None:
    """Canonical name of a built-in metric given by name or as the focalcal function itself."""
    if isinstance(metric, str):
        return _RESAMPLED.canonical(metric)  # raises ValueError listing valid names
    name = getattr(metric, "__name__", None)
    if getattr(metric, "__module__", None) == _functional.__name__ and name in _RESAMPLED:
        return _RESAMPLED.canonical(name)
    return None


def _resample_indices(n: int, n_resamples: int, seed: int, device: torch.device) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (n_resamples, n), generator=generator).to(device)


def _counts(indices: Tensor, n: int) -> Tensor:
    """(R, N) multinomial counts of each item in each resample."""
    counts = torch.zeros(indices.shape[0], n, dtype=torch.float64, device=indices.device)
    return counts.scatter_add_(1, indices, torch.ones_like(counts))


def _resampled_values(
    metric: str | Callable[..., Any],
    samples_in: list[_Sample],
    indices: Tensor,
    metric_kwargs: dict[str, Any],
) -> tuple[list[float], list[Tensor]]:
    """Full-data estimates and (R,) resampled values of ``metric`` for each prepared sample."""
    n = samples_in[0].labels.numel()
    name = _metric_name(metric)
    if name is not None:
        statistic = _RESAMPLED.get(name, **metric_kwargs)
        ones = torch.ones(1, n, dtype=torch.float64, device=indices.device)
        block = max(1, _BLOCK_ELEMENTS // n)
        estimates, samples = [], []
        for sample in samples_in:
            estimates.append(float(statistic(sample, ones)[0]))
            parts = [
                statistic(sample, _counts(indices[i : i + block], n))
                for i in range(0, indices.shape[0], block)
            ]
            samples.append(torch.cat(parts).cpu())
        return estimates, samples
    if not callable(metric):
        raise TypeError(f"metric: expected a metric name or a callable, got {metric!r}")
    estimates = [float(metric(s.probs, s.labels, **metric_kwargs)) for s in samples_in]
    samples = [
        torch.tensor(
            [float(metric(s.probs[idx], s.labels[idx], **metric_kwargs)) for idx in indices],
            dtype=torch.float64,
        )
        for s in samples_in
    ]
    return estimates, samples


def _check_level(level: float) -> float:
    value = check_positive(level, "level")
    if value >= 1:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    return value


#: The default interval, chosen by its measured coverage (``benchmarks/coverage.py``).
DEFAULT_INTERVAL = "basic"


def bootstrap_interval(
    samples: Tensor, estimate: float, *, level: float = 0.95, method: str = DEFAULT_INTERVAL
) -> tuple[float, float, float]:
    r"""``(estimate, low, high)`` of a bootstrap interval from the resampled values ``samples``.

    With :math:`q_a` the a-quantile of the resampled values :math:`\hat\theta^*` and
    :math:`\alpha = 1 - \text{level}`:

    * ``"percentile"``: :math:`[q_{\alpha/2},\ q_{1-\alpha/2}]` (Efron & Tibshirani 1993);
    * ``"basic"``: :math:`[2\hat\theta - q_{1-\alpha/2},\ 2\hat\theta - q_{\alpha/2}]`, the
      percentile interval reflected around the estimate, which undoes a bootstrap bias instead of
      adding it (Davison & Hinkley 1997, §5.2);
    * ``"bc"``: bias-corrected percentile, quantiles at
      :math:`\Phi(2 z_0 \pm z_{1-\alpha/2})` with :math:`z_0 = \Phi^{-1}(\#\{\hat\theta^* <
      \hat\theta\}/R)` (Efron 1987, without the acceleration);
    * ``"debiased"``: the basic interval around the bootstrap bias-corrected estimate
      :math:`2\hat\theta - \overline{\hat\theta^*}`; the returned estimate is the debiased
      one. For a non-negative statistic (estimate and every resampled value >= 0, as for the
      calibration errors) estimate and bounds are clipped at 0.

    The reflected intervals (``"basic"``, ``"debiased"``) always contain the returned estimate:
    where the reflection leaves it outside (a resampling distribution far from symmetric), the
    interval is extended to it. ``"percentile"`` and ``"bc"`` are the textbook intervals and can
    exclude the estimate.

    Example:
        >>> samples = torch.tensor([0.11, 0.12, 0.13, 0.14, 0.15], dtype=torch.float64)
        >>> bootstrap_interval(samples, 0.10, level=0.5, method="percentile")
        (0.1, 0.12, 0.14)
        >>> bootstrap_interval(samples, 0.10, level=0.5, method="basic")  # [0.06, 0.08] ∪ {0.10}
        (0.1, 0.06, 0.1)
    """
    check_choice(method, "method", INTERVAL_METHODS)
    samples = samples.to(torch.float64)
    alpha = 1 - level
    quantiles = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    if method == "bc":
        below = float((samples < estimate).sum() + 0.5 * (samples == estimate).sum())
        share = min(max(below / samples.numel(), 0.5 / samples.numel()), 1 - 0.5 / samples.numel())
        normal = torch.distributions.Normal(0.0, 1.0)
        z0 = normal.icdf(torch.tensor(share, dtype=torch.float64))
        quantiles = normal.cdf(2 * z0 + normal.icdf(quantiles))
    q_low, q_high = torch.quantile(samples, quantiles).tolist()
    if method in ("percentile", "bc"):
        return estimate, q_low, q_high
    low, high = 2 * estimate - q_high, 2 * estimate - q_low
    if method == "debiased":
        floor = 0.0 if estimate >= 0 and bool((samples >= 0).all()) else -math.inf
        estimate = max(2 * estimate - float(samples.mean()), floor)
        low, high = max(low, floor), max(high, floor)
    return estimate, min(low, estimate), max(high, estimate)


def _prepare(
    probs: Any, labels: Any, from_logits: bool, ignore_index: int | None, validate: bool
) -> _Sample:
    x, y, _ = _core.prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    return _Sample(_core.to_probs(x, from_logits), y, _core.label_log_prob(x, y, from_logits))


def bootstrap_ci(
    metric: str | Callable[..., Any],
    probs: Any,
    labels: Any,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    method: str = DEFAULT_INTERVAL,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
    **metric_kwargs: Any,
) -> BootstrapResult:
    r"""Bootstrap confidence interval of ``metric`` on ``(probs, labels)``.

    Args:
        metric: a name (``"ece"``, ``"adaece"``, ``"classwise_ece"``, ``"mce"``, ``"rmsce"``,
            ``"nll"``, ``"brier"``, ``"accuracy"``, ``"error"``), one of the focalcal functions
            (e.g. ``focalcal.metrics.ece``; both take the vectorised path), or any callable
            ``metric(probs, labels, **metric_kwargs) -> float`` (evaluated per resample; it
            receives probabilities, also when ``from_logits=True``).
        probs: (N, C) probabilities, or logits with ``from_logits=True`` (dense inputs flattened).
        labels: (N,) integer labels.
        n_resamples: number of bootstrap resamples R.
        level: coverage of the interval, in (0, 1).
        seed: seed of the resampling (same seed, same resamples).
        method: ``"basic"`` (default:
            :math:`[2\hat\theta - q_{1-\alpha/2},\ 2\hat\theta - q_{\alpha/2}] \cup \{\hat\theta\}`),
            ``"percentile"``, ``"bc"`` or ``"debiased"`` (see :func:`bootstrap_interval`). The
            default was chosen by measured coverage: binned calibration errors are biased
            upwards and resampling adds to the bias, so the percentile interval can lie entirely
            above the estimate and the population value (Classwise-ECE over many classes); the
            basic interval reflects it.
        metric_kwargs: passed to the metric, e.g. ``n_bins=15, convention="official"``.

    Returns:
        :class:`BootstrapResult` ``(estimate, low, high, level, samples)``.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])
        >>> r = bootstrap_ci("accuracy", p, torch.tensor([0, 1, 1, 0]), n_resamples=100)
        >>> r.estimate, r.low <= r.high
        (0.75, True)
    """
    resamples = check_n_bins(n_resamples, "n_resamples")
    level = _check_level(level)
    check_choice(method, "method", INTERVAL_METHODS)
    sample = _prepare(probs, labels, from_logits, ignore_index, validate)
    indices = _resample_indices(sample.labels.numel(), resamples, seed, sample.labels.device)
    (estimate,), (samples,) = _resampled_values(metric, [sample], indices, metric_kwargs)
    estimate, low, high = bootstrap_interval(samples, estimate, level=level, method=method)
    return BootstrapResult(estimate, low, high, level, samples)


def paired_bootstrap(
    metric: str | Callable[..., Any],
    probs_a: Any,
    probs_b: Any,
    labels: Any,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    higher_is_better: bool | None = None,
    method: str = DEFAULT_INTERVAL,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
    **metric_kwargs: Any,
) -> PairedBootstrapResult:
    r"""Paired bootstrap comparison of models A and B on the same test set.

    Both models are evaluated on the *same* resampled items, so the per-item correlation cancels:

    .. math::
        \hat\delta = m(A) - m(B),\qquad
        p = \frac{1 + \#\{r : \hat\delta^*_r \text{ does not favour } A\}}{1 + R}

    (Koehn 2004). A small p-value supports "A is better than B". ``higher_is_better`` defaults to
    ``True`` for accuracy and ``False`` otherwise (calibration errors, NLL, Brier, error).

    Example:
        >>> y = torch.tensor([0, 1, 1, 0] * 25)
        >>> good = torch.nn.functional.one_hot(y, 2).float() * 0.8 + 0.1
        >>> bad = good.flip(1)
        >>> paired_bootstrap("ece", good, bad, y, n_resamples=200).p_value < 0.05
        True
    """
    resamples = check_n_bins(n_resamples, "n_resamples")
    level = _check_level(level)
    a = _prepare(probs_a, labels, from_logits, ignore_index, validate)
    b = _prepare(probs_b, labels, from_logits, ignore_index, validate)
    if a.probs.shape != b.probs.shape:
        raise ValueError(
            f"probs_b: expected the shape of probs_a {tuple(a.probs.shape)}, "
            f"got {tuple(b.probs.shape)}"
        )
    if higher_is_better is None:
        higher_is_better = _metric_name(metric) in _HIGHER_IS_BETTER
    higher_is_better = check_bool(higher_is_better, "higher_is_better")
    check_choice(method, "method", INTERVAL_METHODS)
    indices = _resample_indices(a.labels.numel(), resamples, seed, a.labels.device)
    (est_a, est_b), (s_a, s_b) = _resampled_values(metric, [a, b], indices, metric_kwargs)
    deltas = s_a - s_b
    not_better = (deltas <= 0) if higher_is_better else (deltas >= 0)
    p_value = (1 + int(not_better.sum())) / (1 + resamples)
    delta, low, high = bootstrap_interval(deltas, est_a - est_b, level=level, method=method)
    return PairedBootstrapResult(delta, low, high, level, p_value, deltas)
