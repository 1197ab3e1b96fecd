r"""Coverage of bootstrap intervals on synthetic models whose population calibration error is known.

A synthetic classifier draws logits :math:`z \in \mathbb{R}^C` with i.i.d. :math:`N(0, \sigma^2)`
entries and reports :math:`p = \mathrm{softmax}(z)`, while the label is drawn from
:math:`q = \mathrm{softmax}(s\,z)`. ``s = 1`` is a perfectly (canonically) calibrated model;
``s < 1`` makes the model over-confident, ``s > 1`` under-confident.

The *population* value of a binned metric at a fixed binning is computed without label noise,
from the exact conditional label probabilities (a Rao-Blackwellised Monte-Carlo over
:math:`z`): for the top-label ECE with equal-width bins :math:`B_b`,

.. math:: \mathrm{ECE}_{\mathrm{pop}} = \sum_b \big|\,\mathbb{E}\big[(\max_c p_c - q_{\hat y})
          \,\mathbb{1}\{\max_c p_c \in B_b\}\big]\big|,\qquad \hat y = \arg\max_c p_c,

AdaECE is the same over the population's equal-mass bins (quantiles of the confidence), and
Classwise-ECE averages :math:`\sum_b |\mathbb{E}[(p_c - q_c)\mathbb{1}\{p_c \in B_b\}]|` over the
classes. :func:`interval_coverage` then draws test sets of N items, computes the bootstrap
interval of each method from one set of resamples, and counts how often it contains the
population value. ``benchmarks/coverage.py`` runs the study that chose the default interval.

Example:
    >>> model = SyntheticModel(num_classes=3, scale=0.5)
    >>> population = model.population_values(draws=200_000)
    >>> round(population["ece"], 2)
    0.13
    >>> result = interval_coverage(model, "ece", n=500, repetitions=8, n_resamples=100,
    ...                            population=population["ece"])
    >>> result["basic"].contains_estimate
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from focalcal._validation import check_choice, check_int, check_positive
from focalcal.metrics.binning import assign_bins, equal_width_edges
from focalcal.metrics.bootstrap import INTERVAL_METHODS, bootstrap_ci, bootstrap_interval

__all__ = ["CoverageResult", "SyntheticModel", "interval_coverage"]

POPULATION_METRICS = ("ece", "adaece", "classwise_ece")
_CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class SyntheticModel:
    """A classifier with logits ``z ~ N(0, logit_std²)`` that reports ``softmax(z)`` while labels
    follow ``softmax(scale·z)`` (``scale = 1``: perfectly calibrated)."""

    num_classes: int
    scale: float
    logit_std: float = 3.0

    def __post_init__(self) -> None:
        check_int(self.num_classes, "num_classes", min_value=2)
        check_positive(self.scale, "scale")
        check_positive(self.logit_std, "logit_std")

    def _draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(n, C) reported probabilities and true label probabilities, float64."""
        z = torch.randn(n, self.num_classes, generator=generator, dtype=torch.float64)
        z.mul_(self.logit_std)
        return torch.softmax(z, 1), torch.softmax(z * self.scale, 1)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A test set: (n, C) float64 probabilities and (n,) labels drawn from the true law."""
        probs, truth = self._draw(n, generator)
        return probs, torch.multinomial(truth, 1, generator=generator).squeeze(1)

    def population_values(
        self, *, n_bins: int = 15, draws: int = 10_000_000, seed: int = 0
    ) -> dict[str, float]:
        """Population ECE, AdaECE and Classwise-ECE at ``n_bins`` bins, from ``draws`` logits.

        All three come from the same draws; each draw contributes its exact expected gap
        (reported minus true probability), so no label noise enters.
        """
        check_int(draws, "draws", min_value=1)
        generator = torch.Generator().manual_seed(seed)
        chunk = max(1, _CHUNK_ELEMENTS // self.num_classes)
        edges = equal_width_edges(n_bins, dtype=torch.float64)
        class_offsets = torch.arange(self.num_classes) * n_bins
        confidences, gaps = [], []
        classwise = torch.zeros(self.num_classes * n_bins, dtype=torch.float64)
        for start in range(0, draws, chunk):
            probs, truth = self._draw(min(chunk, draws - start), generator)
            confidence, top = probs.max(1)
            confidences.append(confidence)
            gaps.append(confidence - truth.gather(1, top.unsqueeze(1)).squeeze(1))
            bins = assign_bins(probs, edges) + class_offsets
            classwise.index_add_(0, bins.view(-1), (probs - truth).view(-1))
        confidence, gap = torch.cat(confidences), torch.cat(gaps)
        mass_edges = _quantiles(confidence, torch.linspace(0, 1, n_bins + 1, dtype=torch.float64))
        values = {"classwise_ece": classwise.view(self.num_classes, n_bins).abs().sum(1).mean()}
        for name, bin_edges in (("ece", edges), ("adaece", mass_edges)):
            per_bin = torch.zeros(n_bins, dtype=torch.float64)
            per_bin.index_add_(0, assign_bins(confidence, bin_edges), gap)
            values[name] = per_bin.abs().sum()
        return {name: float(values[name] / draws) for name in POPULATION_METRICS}


def _quantiles(values: Tensor, levels: Tensor) -> Tensor:
    """Quantiles of a large 1-D tensor (``torch.quantile`` is limited to 2^24 elements)."""
    ordered = values.sort().values
    positions = (levels * (ordered.numel() - 1)).round().long()
    return ordered[positions]


class CoverageResult(NamedTuple):
    """Per interval method: coverage of the population value, and diagnostics."""

    coverage: float  # fraction of intervals that contain the population value
    contains_estimate: float  # fraction of intervals that contain their own point estimate
    mean_width: float
    mean_estimate: float


def interval_coverage(
    model: SyntheticModel,
    metric: str,
    *,
    n: int,
    population: float,
    repetitions: int = 200,
    n_resamples: int = 200,
    level: float = 0.95,
    n_bins: int = 15,
    methods: tuple[str, ...] = INTERVAL_METHODS,
    seed: int = 0,
) -> dict[str, CoverageResult]:
    """Coverage of each bootstrap interval method of :func:`~focalcal.metrics.bootstrap_ci`.

    Every repetition draws a test set of ``n`` items from ``model``, resamples it
    ``n_resamples`` times once, and evaluates each method's interval from those resamples
    (:func:`~focalcal.metrics.bootstrap.bootstrap_interval`), so the methods are compared on
    identical data. Returns ``{method: CoverageResult}``.
    """
    check_int(repetitions, "repetitions", min_value=1)
    for method in methods:
        check_choice(method, "methods", INTERVAL_METHODS)
    generator = torch.Generator().manual_seed(seed)
    hits = {m: torch.zeros(4, dtype=torch.float64) for m in methods}
    for rep in range(repetitions):
        probs, labels = model.sample(n, generator)
        result = bootstrap_ci(
            metric, probs, labels, n_resamples=n_resamples, level=level, seed=seed + rep,
            n_bins=n_bins,
        )  # fmt: skip
        for method in methods:
            estimate, low, high = bootstrap_interval(
                result.samples, result.estimate, level=level, method=method
            )
            hits[method] += torch.tensor(
                [low <= population <= high, low <= estimate <= high, high - low, estimate],
                dtype=torch.float64,
            )
    return {m: CoverageResult(*(hits[m] / repetitions).tolist()) for m in methods}
