"""Bootstrap intervals: vectorised path == explicit resampling loop, seeded, sensible coverage;
paired bootstrap: same resamples for both models, direction of the p-value."""

from __future__ import annotations

import pytest
import torch

from focalcal import metrics

NAMED = [
    ("ece", metrics.ece, {}),
    ("mce", metrics.mce, {"n_bins": 10}),
    ("rmsce", metrics.rmsce, {}),
    ("adaece", metrics.adaece, {}),
    ("adaece", metrics.adaece, {"convention": "official"}),
    ("classwise_ece", metrics.classwise_ece, {}),
    ("classwise_ece", metrics.classwise_ece, {"convention": "official"}),
    ("ece", metrics.ece, {"convention": "official"}),
    ("nll", metrics.nll, {}),
    ("brier", metrics.brier, {}),
    ("accuracy", metrics.accuracy, {}),
    ("error", metrics.error, {}),
]


def _case(n: int = 300, c: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, c, generator=g) * 2).softmax(1), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize(("name", "fn", "kwargs"), NAMED, ids=[f"{n}-{k}" for n, _, k in NAMED])
def test_vectorised_bootstrap_equals_explicit_resampling(name, fn, kwargs) -> None:
    probs, labels = _case()
    fast = metrics.bootstrap_ci(name, probs, labels, n_resamples=20, seed=7, **kwargs)
    slow = metrics.bootstrap_ci(
        lambda p, y, **kw: fn(p, y, **kw), probs, labels, n_resamples=20, seed=7, **kwargs
    )
    tol = 1e-7 if name == "classwise_ece" else 1e-12  # float32 column totals (see binning)
    assert fast.estimate == pytest.approx(float(fn(probs, labels, **kwargs)), abs=tol)
    assert torch.allclose(fast.samples, slow.samples, atol=tol, rtol=0)
    # passing the focalcal function itself takes the same vectorised path
    same = metrics.bootstrap_ci(fn, probs, labels, n_resamples=20, seed=7, **kwargs)
    assert torch.equal(same.samples, fast.samples)


def test_seeded_and_percentile_interval() -> None:
    probs, labels = _case()
    a = metrics.bootstrap_ci("ece", probs, labels, n_resamples=200, seed=1, method="percentile")
    b = metrics.bootstrap_ci("ece", probs, labels, n_resamples=200, seed=1, method="percentile")
    c = metrics.bootstrap_ci("ece", probs, labels, n_resamples=200, seed=2, method="percentile")
    assert torch.equal(a.samples, b.samples) and not torch.equal(a.samples, c.samples)
    lo, hi = torch.quantile(a.samples, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    assert (a.low, a.high) == pytest.approx((lo, hi))
    assert a.low <= a.estimate <= a.high and a.level == 0.95
    assert a.bias == pytest.approx(float(a.samples.mean()) - a.estimate)
    basic = metrics.bootstrap_ci("ece", probs, labels, n_resamples=200, seed=1, method="basic")
    assert (basic.low, basic.high) == pytest.approx((2 * a.estimate - hi, 2 * a.estimate - lo))


def test_interval_covers_the_population_accuracy() -> None:
    # accuracy of a fixed classifier on Bernoulli(0.7) outcomes: the 90% interval should cover
    # 0.7 in most of 30 independent test sets (binomial: expect 27, sd 1.6; require >= 22)
    covered = 0
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        correct = torch.rand(400, generator=g) < 0.7
        probs = torch.tensor([[0.9, 0.1]]).expand(400, 2)
        labels = (~correct).long()
        r = metrics.bootstrap_ci("accuracy", probs, labels, n_resamples=200, level=0.9, seed=seed)
        covered += r.low <= 0.7 <= r.high
    assert covered >= 22


def test_paired_bootstrap_uses_same_resamples_and_orients_p_value() -> None:
    probs, labels = _case(400, 4, seed=3)
    sharp = (probs.log() * 3).softmax(1)  # over-confident version of the same model
    res = metrics.paired_bootstrap("ece", probs, sharp, labels, n_resamples=300, seed=4)
    a = metrics.bootstrap_ci("ece", probs, labels, n_resamples=300, seed=4)
    b = metrics.bootstrap_ci("ece", sharp, labels, n_resamples=300, seed=4)
    assert torch.allclose(res.samples, a.samples - b.samples)
    assert res.difference == pytest.approx(a.estimate - b.estimate)
    assert res.difference < 0 and res.p_value < 0.05 and res.low <= res.difference <= res.high
    reverse = metrics.paired_bootstrap("ece", sharp, probs, labels, n_resamples=300, seed=4)
    assert reverse.p_value > 0.95
    # accuracy: higher is better; identical argmax -> no difference -> p = 1
    same = metrics.paired_bootstrap("accuracy", probs, sharp, labels, n_resamples=50)
    assert same.difference == 0.0 and same.p_value == 1.0


def test_nll_bootstrap_from_saturated_logits_stays_finite() -> None:
    logits = torch.tensor([[0.0, 200.0], [3.0, 0.0], [0.0, 1.0]])  # p_label underflows in row 0
    labels = torch.tensor([0, 0, 1])
    r = metrics.bootstrap_ci("nll", logits, labels, n_resamples=50, from_logits=True)
    assert r.estimate == pytest.approx(float(metrics.nll(logits, labels, from_logits=True)))
    assert torch.isfinite(r.samples).all() and r.estimate > 60
