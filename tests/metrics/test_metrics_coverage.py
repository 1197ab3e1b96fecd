"""The coverage study's machinery: population values, the coverage count, the default interval."""

from __future__ import annotations

import pytest
import torch

from focalcal import metrics
from focalcal.metrics.bootstrap import DEFAULT_INTERVAL, bootstrap_ci, bootstrap_interval
from focalcal.metrics.coverage import SyntheticModel, interval_coverage


def test_a_perfectly_calibrated_model_has_population_error_zero():
    values = SyntheticModel(num_classes=4, scale=1.0).population_values(draws=50_000)
    assert values == {"ece": 0.0, "adaece": 0.0, "classwise_ece": 0.0}


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_population_values_match_the_plug_in_metrics_on_a_huge_labelled_sample(scale):
    """The plug-in estimators converge to the population value (bias ~ sqrt(bins / N))."""
    model = SyntheticModel(num_classes=4, scale=scale)
    population = model.population_values(draws=400_000, seed=1)
    probs, labels = model.sample(400_000, torch.Generator().manual_seed(2))
    for name in ("ece", "adaece", "classwise_ece"):
        plug_in = float(getattr(metrics, name)(probs, labels))
        assert plug_in == pytest.approx(population[name], abs=4e-3), name
    assert population["ece"] > 0.05  # a real miscalibration, not a degenerate case


def test_over_confidence_is_the_expected_gap_when_every_bin_is_over_confident():
    """If conf > acc in every bin, ECE = E[conf] - P(correct): a closed form from the draws."""
    model = SyntheticModel(num_classes=3, scale=0.5)
    population = model.population_values(draws=200_000, seed=3)
    probs, truth = model._draw(200_000, torch.Generator().manual_seed(3))
    confidence, top = probs.max(1)
    expected = float((confidence - truth.gather(1, top[:, None]).squeeze(1)).mean())
    assert population["ece"] == pytest.approx(expected, rel=1e-9)
    assert population["adaece"] == pytest.approx(expected, rel=1e-9)


def test_coverage_counts_what_an_independent_recount_counts():
    model = SyntheticModel(num_classes=5, scale=0.5)
    population = 0.05
    result = interval_coverage(
        model, "classwise_ece", n=300, population=population, repetitions=6, n_resamples=50,
        seed=4,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(4)
    covered = {m: 0 for m in result}
    for rep in range(6):
        probs, labels = model.sample(300, generator)
        for method in result:
            r = bootstrap_ci(
                "classwise_ece", probs, labels, n_resamples=50, seed=4 + rep, method=method
            )
            covered[method] += r.low <= population <= r.high
    for method, value in result.items():
        assert value.coverage == covered[method] / 6, method


def test_the_default_interval_covers_where_the_percentile_interval_does_not():
    """Classwise-ECE of an over-confident 10-class model, N = 1,000 (a cell of the study)."""
    model = SyntheticModel(num_classes=10, scale=0.5)
    population = model.population_values(draws=200_000)["classwise_ece"]
    result = interval_coverage(
        model, "classwise_ece", n=1000, population=population, repetitions=20, n_resamples=100
    )
    assert DEFAULT_INTERVAL == "basic"
    assert result["basic"].coverage >= 0.85
    assert result["percentile"].coverage <= 0.2  # the bias added twice
    assert result["basic"].contains_estimate == result["debiased"].contains_estimate == 1.0
    assert result["percentile"].contains_estimate < 0.9


def test_the_default_interval_contains_its_estimate():
    model = SyntheticModel(num_classes=10, scale=0.5)
    probs, labels = model.sample(300, torch.Generator().manual_seed(0))
    for name in ("ece", "adaece", "classwise_ece"):
        r = bootstrap_ci(name, probs, labels, n_resamples=200)
        assert r.low <= r.estimate <= r.high, name
    percentile = bootstrap_ci("classwise_ece", probs, labels, n_resamples=200, method="percentile")
    assert percentile.low > percentile.estimate  # what the default fixes


def test_interval_methods_against_their_formulas():
    samples = torch.tensor([0.11, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17], dtype=torch.float64)
    q_low, q_high = torch.quantile(samples, torch.tensor([0.05, 0.95], dtype=torch.float64))
    assert bootstrap_interval(samples, 0.14, level=0.9, method="percentile") == pytest.approx(
        (0.14, float(q_low), float(q_high))
    )
    assert bootstrap_interval(samples, 0.14, level=0.9, method="basic") == pytest.approx(
        (0.14, 0.28 - float(q_high), 0.28 - float(q_low))
    )
    debiased = 2 * 0.14 - float(samples.mean())
    assert bootstrap_interval(samples, 0.14, level=0.9, method="debiased") == pytest.approx(
        (debiased, 0.28 - float(q_high), 0.28 - float(q_low))
    )
    # bc with z0 = 0 (the estimate at the median) is the percentile interval
    assert bootstrap_interval(samples, 0.14, level=0.9, method="bc") == pytest.approx(
        (0.14, float(q_low), float(q_high))
    )
    with pytest.raises(ValueError, match=r"method: expected one of .*'basic'.*got 'bca'"):
        bootstrap_interval(samples, 0.14, method="bca")
