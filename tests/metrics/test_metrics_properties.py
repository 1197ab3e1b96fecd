"""Properties: ranges, consistency as N grows, relabelling invariance, streaming == one-shot,
dense/ignore_index flattening, numpy in -> numpy out."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from focalcal import metrics

BINNED = [metrics.ece, metrics.adaece, metrics.classwise_ece, metrics.mce, metrics.rmsce]
CONVENTIONS = ["default", "official"]


def _case(n: int, c: int, seed: int, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * scale, torch.randint(0, c, (n,), generator=g)


@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 60),
    c=st.integers(1, 6),
    n_bins=st.integers(1, 20),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.0, 1.0, 5.0, 50.0]),
    convention=st.sampled_from(CONVENTIONS),
)
def test_metrics_lie_in_their_ranges(n, c, n_bins, seed, scale, convention) -> None:
    logits, labels = _case(n, c, seed, scale)
    for fn in BINNED:
        v = float(fn(logits, labels, n_bins=n_bins, from_logits=True, convention=convention))
        assert 0.0 <= v <= 1.0 + 1e-12, fn.__name__
    assert 0.0 <= float(metrics.brier(logits, labels, from_logits=True)) <= 2.0
    assert float(metrics.nll(logits, labels, from_logits=True)) >= 0.0
    assert 0.0 <= float(metrics.smooth_ece(logits, labels, from_logits=True)) <= 1.0
    # ECE is never above MCE; RMSCE lies between ECE and MCE (power-mean inequality)
    e = float(metrics.ece(logits, labels, n_bins=n_bins, from_logits=True))
    r = float(metrics.rmsce(logits, labels, n_bins=n_bins, from_logits=True))
    m = float(metrics.mce(logits, labels, n_bins=n_bins, from_logits=True))
    assert e <= r + 1e-12 and r <= m + 1e-12


def test_perfectly_calibrated_data_ece_shrinks_with_n() -> None:
    g = torch.Generator().manual_seed(0)
    values = {}
    for n in (500, 5_000, 50_000):
        probs = torch.distributions.Dirichlet(torch.full((5,), 0.7)).sample((n,))
        labels = torch.multinomial(probs, 1, generator=g).squeeze(1)
        values[n] = [
            float(fn(probs, labels)) for fn in (metrics.ece, metrics.adaece, metrics.classwise_ece)
        ]
    for k in range(3):
        assert values[50_000][k] < values[5_000][k] < values[500][k]
    assert max(values[50_000]) < 0.02
    # miscalibrated (sharpened) predictions do not shrink
    probs = torch.distributions.Dirichlet(torch.full((5,), 0.7)).sample((50_000,))
    labels = torch.multinomial(probs, 1, generator=g).squeeze(1)
    sharp = (probs.log() * 2.5).softmax(1)
    assert float(metrics.ece(sharp, labels)) > 0.1


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_relabelling_classes_changes_nothing(convention: str) -> None:
    logits, labels = _case(400, 7, seed=1)
    logits = logits.double()  # float32 softmax rounding depends on the column order
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(2))
    # column j of the permuted logits is class perm[j]; labels are renamed accordingly
    inverse = torch.argsort(perm)
    logits_p, labels_p = logits[:, perm], inverse[labels]
    fns = [
        metrics.ece,
        metrics.adaece,
        metrics.mce,
        metrics.rmsce,
        metrics.nll,
        metrics.brier,
        metrics.accuracy,
    ]
    for fn in fns:
        kw = {"convention": convention} if fn in BINNED else {}
        a = fn(logits, labels, from_logits=True, **kw)
        b = fn(logits_p, labels_p, from_logits=True, **kw)
        assert float(a) == pytest.approx(float(b), abs=1e-12), fn.__name__
    a = metrics.classwise_ece(logits, labels, from_logits=True)
    b = metrics.classwise_ece(logits_p, labels_p, from_logits=True)
    assert float(a) == pytest.approx(float(b), abs=1e-9)


STREAMING = [
    (metrics.ECE, metrics.ece),
    (metrics.MCE, metrics.mce),
    (metrics.RMSCE, metrics.rmsce),
    (metrics.AdaECE, metrics.adaece),
    (metrics.ClasswiseECE, metrics.classwise_ece),
    (metrics.NLL, metrics.nll),
    (metrics.Brier, metrics.brier),
    (metrics.Accuracy, metrics.accuracy),
]


@settings(max_examples=8, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 199), max_size=6),
    seed=st.integers(0, 1000),
    convention=st.sampled_from(CONVENTIONS),
)
def test_streaming_over_any_batching_equals_one_shot(cuts, seed, convention) -> None:
    logits, labels = _case(200, 5, seed)
    bounds = [0, *sorted(set(cuts)), 200]
    for cls, fn in STREAMING:
        binned = fn in BINNED
        kw = {"convention": convention} if binned else {}
        m = cls(from_logits=True, **kw)
        for lo, hi in itertools.pairwise(bounds):
            m.update(logits[lo:hi], labels[lo:hi])
        expected = float(fn(logits, labels, from_logits=True, **kw))
        # Classwise bin 0 is a float32 column total minus the other bins: ~1e-9 differences
        tol = 1e-7 if cls is metrics.ClasswiseECE else 1e-10
        assert float(m.compute()) == pytest.approx(expected, abs=tol), cls.__name__


def test_smooth_ece_streaming_equals_one_shot() -> None:
    logits, labels = _case(300, 4, seed=7)
    m2 = metrics.SmoothECE(from_logits=True)
    m2.update(logits[:13], labels[:13])
    m2.update(logits[13:], labels[13:])
    expected = float(metrics.smooth_ece(logits, labels, from_logits=True))
    assert float(m2.compute()) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_calibration_metrics_collection_equals_functionals(convention: str) -> None:
    logits, labels = _case(300, 6, seed=3)
    coll = metrics.CalibrationMetrics(n_bins=10, convention=convention, from_logits=True)
    for lo in range(0, 300, 70):
        coll.update(logits[lo : lo + 70], labels[lo : lo + 70])
    out = coll.compute()
    binned = {
        "ece": metrics.ece,
        "adaece": metrics.adaece,
        "classwise_ece": metrics.classwise_ece,
        "mce": metrics.mce,
        "rmsce": metrics.rmsce,
    }
    for name, fn in binned.items():
        expected = fn(logits, labels, n_bins=10, convention=convention, from_logits=True)
        tol = 1e-7 if name == "classwise_ece" else 1e-10  # float32 column totals, see above
        assert float(out[name]) == pytest.approx(float(expected), abs=tol), name
    for name, fn in {
        "nll": metrics.nll,
        "brier": metrics.brier,
        "accuracy": metrics.accuracy,
        "error": metrics.error,
        "smooth_ece": metrics.smooth_ece,
    }.items():
        # NLL from float32 logits: log p_y = z_y - z_max + log p_max (float32 log): ~1e-8 relative
        expected = float(fn(logits, labels, from_logits=True))
        assert float(out[name]) == pytest.approx(expected, rel=1e-7, abs=1e-10), name
    coll.reset()
    coll.update(logits[:10], labels[:10])
    assert float(coll.compute()["ece"]) == pytest.approx(
        float(
            metrics.ece(
                logits[:10], labels[:10], n_bins=10, convention=convention, from_logits=True
            )
        )
    )


def test_classwise_state_is_bins_times_classes_independent_of_n() -> None:
    m = metrics.ClasswiseECE(n_bins=15, num_classes=10, from_logits=True)
    for seed in range(3):
        m.update(*_case(1000, 10, seed))
    assert m.count.shape == (10, 15) and m.count.dtype == torch.float64
    top = metrics.ECE(from_logits=True)
    top.update(*_case(1000, 10, 0))
    assert top.count.shape == (15,)


def test_dense_inputs_with_ignore_index_equal_flattened_rows() -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 4, 3, 5, generator=g) * 3
    labels = torch.randint(0, 4, (2, 3, 5), generator=g)
    labels[0, 1, :] = 255
    flat_logits = logits.movedim(1, -1).reshape(-1, 4)
    flat_labels = labels.reshape(-1)
    keep = flat_labels != 255
    for fn in [*BINNED, metrics.nll, metrics.brier, metrics.accuracy]:
        a = fn(logits, labels, from_logits=True, ignore_index=255)
        b = fn(flat_logits[keep], flat_labels[keep], from_logits=True)
        assert float(a) == pytest.approx(float(b), abs=1e-12), fn.__name__
    m = metrics.ECE(from_logits=True, ignore_index=255)
    m.update(logits, labels)
    assert float(m.compute()) == pytest.approx(
        float(metrics.ece(flat_logits[keep], flat_labels[keep], from_logits=True))
    )


def test_numpy_in_numpy_out_and_logits_equal_probabilities() -> None:
    logits, labels = _case(50, 3, seed=5)
    probs = logits.softmax(1)
    out = metrics.ece(probs.numpy(), labels.numpy())
    assert isinstance(out, np.ndarray) and out.shape == ()
    assert float(out) == pytest.approx(
        float(metrics.ece(logits, labels, from_logits=True)), abs=1e-7
    )


def test_official_adaece_drops_minimum_and_default_keeps_it() -> None:
    probs = torch.tensor([[0.55, 0.45], [0.6, 0.4], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]])
    labels = torch.tensor([0, 0, 0, 0, 1])
    # one sample, or all-equal confidences: official AdaECE is 0, the default is |conf - acc|
    assert float(metrics.adaece(probs[:1], labels[:1], convention="official")) == 0.0
    assert float(metrics.adaece(probs[:1], labels[:1])) == pytest.approx(0.45)
    bins = metrics.calibration_bins(probs, labels, n_bins=2, strategy="mass", convention="official")
    assert float(bins.count.sum()) == 4.0  # the 0.55 sample is in no bin
    assert (
        float(metrics.calibration_bins(probs, labels, n_bins=2, strategy="mass").count.sum()) == 5.0
    )


def test_calibration_bins_reproduce_ece_and_adaece() -> None:
    logits, labels = _case(333, 8, seed=6)
    for strategy, fn in (("width", metrics.ece), ("mass", metrics.adaece)):
        for convention in CONVENTIONS:
            b = metrics.calibration_bins(
                logits, labels, strategy=strategy, convention=convention, from_logits=True
            )
            assert float((b.proportion * b.gap.abs()).sum()) == pytest.approx(
                float(fn(logits, labels, convention=convention, from_logits=True)), abs=1e-12
            )
            assert b.edges.shape == (16,) and b.count.shape == (15,)
