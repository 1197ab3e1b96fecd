"""Bad input raises a clear error naming the argument, the expected and the received value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal import metrics
from focalcal.metrics import ood

PROBS = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
LABELS = torch.tensor([0, 1])
ALL = [
    metrics.ece,
    metrics.adaece,
    metrics.classwise_ece,
    metrics.mce,
    metrics.rmsce,
    metrics.nll,
    metrics.brier,
    metrics.accuracy,
    metrics.error,
    metrics.smooth_ece,
    metrics.calibration_bins,
]


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_logits_passed_as_probabilities_hint_from_logits(fn) -> None:
    with pytest.raises(ValueError, match=r"probs: expected probabilities.*from_logits=True"):
        fn(torch.tensor([[2.0, -1.0], [0.5, 3.0]]), LABELS)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_nan_and_inf_are_rejected(fn) -> None:
    with pytest.raises(ValueError, match="probs: expected finite values, got 1 NaN/inf"):
        fn(torch.tensor([[0.5, float("nan")], [0.2, 0.8]]), LABELS)
    with pytest.raises(ValueError, match="probs: expected finite values"):
        fn(torch.tensor([[0.0, float("inf")], [0.2, 0.8]]), LABELS, from_logits=True)


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_labels_out_of_range_not_integer_or_misshaped(fn) -> None:
    with pytest.raises(
        ValueError, match=r"labels: expected class indices in \[0, 2\), got values \[2\]"
    ):
        fn(PROBS, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 2\)"):
        fn(PROBS, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="labels: expected integer class indices"):
        fn(PROBS, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\)"):
        fn(PROBS, torch.tensor([0, 1, 1]))


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_empty_and_wrong_rank_inputs(fn) -> None:
    with pytest.raises(ValueError, match="probs: expected at least one sample, got 0"):
        fn(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"probs: expected shape \(N, C\)"):
        fn(torch.tensor([0.2, 0.8]), torch.tensor([1]))
    with pytest.raises(ValueError, match="after dropping ignore_index=-1"):
        fn(PROBS, torch.tensor([-1, -1]), ignore_index=-1)
    with pytest.raises(TypeError, match=r"probs: expected a torch\.Tensor or numpy\.ndarray"):
        fn("not an array", LABELS)


@pytest.mark.parametrize(
    "fn", [metrics.ece, metrics.adaece, metrics.classwise_ece, metrics.mce, metrics.rmsce]
)
def test_binned_arguments(fn) -> None:
    with pytest.raises(ValueError, match="n_bins: expected an integer >= 1, got 0"):
        fn(PROBS, LABELS, n_bins=0)
    with pytest.raises(TypeError, match="n_bins: expected an integer >= 1"):
        fn(PROBS, LABELS, n_bins=2.5)
    with pytest.raises(
        ValueError, match=r"convention: expected one of \['default', 'official'\], got 'papers'"
    ):
        fn(PROBS, LABELS, convention="papers")


def test_streaming_metrics_validate_too() -> None:
    m = metrics.ECE()
    with pytest.raises(ValueError, match="from_logits=True"):
        m.update(torch.tensor([[3.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="n_bins"):
        metrics.ECE(n_bins=0)
    with pytest.raises(ValueError, match="convention"):
        metrics.CalibrationMetrics(convention="x")
    with pytest.raises(ValueError, match="num_classes"):
        metrics.ClasswiseECE(num_classes=0)


def test_bootstrap_arguments() -> None:
    with pytest.raises(
        ValueError, match="unknown bootstrap metric 'ecee'; expected one of: accuracy"
    ):
        metrics.bootstrap_ci("ecee", PROBS, LABELS)
    with pytest.raises(ValueError, match=r"level: expected a number in \(0, 1\), got 1.5"):
        metrics.bootstrap_ci("ece", PROBS, LABELS, level=1.5)
    with pytest.raises(ValueError, match="n_resamples: expected an integer >= 1, got 0"):
        metrics.bootstrap_ci("ece", PROBS, LABELS, n_resamples=0)
    with pytest.raises(
        ValueError, match=r"method: expected one of \['percentile', 'basic', 'bc', 'debiased'\]"
    ):
        metrics.bootstrap_ci("ece", PROBS, LABELS, method="bca")
    with pytest.raises(ValueError, match="n_bins: expected an integer >= 1, got 0"):
        metrics.bootstrap_ci("adaece", PROBS, LABELS, n_bins=0)
    with pytest.raises(ValueError, match="convention: expected one of"):
        metrics.bootstrap_ci("classwise_ece", PROBS, LABELS, convention="x")
    with pytest.raises(TypeError, match="metric: expected a metric name or a callable"):
        metrics.bootstrap_ci(3, PROBS, LABELS)
    with pytest.raises(
        ValueError, match=r"probs_b: expected the shape of probs_a \(2, 2\), got \(2, 3\)"
    ):
        metrics.paired_bootstrap("ece", PROBS, torch.full((2, 3), 1 / 3), LABELS)


def test_ood_arguments() -> None:
    with pytest.raises(ValueError, match="scores_out: expected a non-empty 1-D tensor"):
        ood.ood_auroc(np.array([0.1, 0.2]), np.array([]))
    with pytest.raises(ValueError, match="scores_in: expected finite values"):
        ood.ood_auroc(np.array([0.1, np.nan]), np.array([0.3]))
    with pytest.raises(ValueError, match="logits: expected finite values"):
        ood.entropy_score(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="temperature: expected a finite number > 0, got 0"):
        ood.energy_score(torch.zeros(2, 3), temperature=0)
    with pytest.raises(ValueError, match=r"tpr: expected a number in \(0, 1\], got 1.5"):
        ood.fpr_at_95_tpr(np.array([0.1]), np.array([0.3]), tpr=1.5)


def test_validate_false_skips_value_checks_but_not_shapes() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    metrics.ece(logits, LABELS, validate=False)  # no probability check (caller's responsibility)
    with pytest.raises(ValueError, match="labels: expected shape"):
        metrics.ece(PROBS, torch.tensor([0]), validate=False)
