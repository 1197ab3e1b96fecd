"""Temperature scaling: parity with the official grid search, exactness of the Newton solve."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from focalcal import metrics
from focalcal.calibration import TemperatureScaling, official_temperature_grid
from focalcal.metrics import ood

TS_CASES = ["overconf_C10_s2.5", "overconf_C100_s1.8", "underconf_C10_s0.6"]


def _synthetic(n: int, c: int, sharpness: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels drawn from p ~ Dirichlet, logits s·log p: the ideal temperature is s."""
    g = torch.Generator().manual_seed(seed)
    alpha = torch.full((c,), 0.5)
    p = torch._sample_dirichlet(alpha.expand(n, c).contiguous(), generator=g)
    labels = torch.multinomial(p, 1, generator=g).squeeze(1)
    return sharpness * p.clamp_min(1e-30).log(), labels


def _nll64(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    return float(F.cross_entropy(logits.double() / temperature, labels))


# ---------------------------------------------------------------------------- official parity
def test_default_grid_is_the_official_accumulated_grid(refvectors):
    grid = official_temperature_grid()
    expected = refvectors[f"ts__{TS_CASES[0]}__grid_T"]
    assert len(grid) == 100
    assert np.array_equal(np.asarray(grid), expected)  # bit-identical, float drift included
    t, direct = 0.1, []
    for _ in range(100):
        direct.append(t)
        t += 0.1
    assert grid == direct


@pytest.mark.parametrize("case", TS_CASES)
@pytest.mark.parametrize(
    ("criterion", "convention"), [("ece", "official"), ("ece", "default"), ("nll", "default")]
)
def test_grid_reproduces_official_temperature_and_scores(refvectors, case, criterion, convention):
    key = f"ts__{case}__"
    ts = TemperatureScaling(f"grid_{criterion}", convention=convention)
    ts.fit(refvectors[key + "val_logits"], refvectors[key + "val_labels"])
    assert ts.temperature_ == refvectors[key + f"fc_cv{criterion}__T"]
    assert ts.temperature_ == refvectors[key + f"dfl_cv{criterion}__T"]
    score_key = "grid_val_ece15" if criterion == "ece" else "grid_val_nll"
    np.testing.assert_allclose(ts.grid_scores_, refvectors[key + score_key], rtol=1e-4)
    assert ts.n_softmax_passes_ == 100


@pytest.mark.parametrize("case", TS_CASES)
@pytest.mark.parametrize("criterion", ["ece", "nll"])
def test_test_metrics_after_scaling_match_official(refvectors, case, criterion):
    key = f"ts__{case}__"
    ts = TemperatureScaling(f"grid_{criterion}", convention="official")
    ts.fit(refvectors[key + "val_logits"], refvectors[key + "val_labels"])
    scaled = ts.transform(refvectors[key + "test_logits"])
    labels = refvectors[key + "test_labels"]
    kw = {"from_logits": True, "convention": "official"}
    got = {
        "ece15": metrics.ece(scaled, labels, **kw),
        "adaece15": metrics.adaece(scaled, labels, **kw),
        "cwece15": metrics.classwise_ece(scaled, labels, **kw),
        "nll": metrics.nll(scaled, labels, from_logits=True),
    }
    for name, value in got.items():
        np.testing.assert_allclose(
            float(value),
            refvectors[key + f"fc_cv{criterion}__test_{name}"],
            rtol=1e-4,
            err_msg=name,
        )


def test_first_minimum_wins_on_ties():
    # Two well-separated identical copies of each temperature: the first copy must win.
    logits, labels = _synthetic(400, 5, 2.0, seed=3)
    grid = [1.0, 2.0, 3.0, 2.0, 1.0]
    ts = TemperatureScaling("grid_nll", grid=grid).fit(logits, labels)
    assert ts.grid_scores_[1] == ts.grid_scores_[3]
    assert ts.temperature_ == 2.0 and int(np.argmin(ts.grid_scores_)) == 1


def test_official_ood_auroc_after_scaling(refvectors):
    ind, out = refvectors["ood__ind_logits"], refvectors["ood__ood_logits"]
    ts = TemperatureScaling("grid_nll", grid=[2.5]).fit(ind, refvectors["ood__ind_labels"])
    assert ts.temperature_ == 2.5
    auroc = ood.ood_auroc(
        ood.entropy_score(ts.transform(ind)), ood.entropy_score(ts.transform(out))
    )
    np.testing.assert_allclose(float(auroc), refvectors["ood__T2.5__auroc_entropy"], rtol=1e-4)


# ---------------------------------------------------------------------------- exact optimiser
@pytest.mark.parametrize(("sharpness", "seed"), [(2.5, 0), (0.6, 1), (1.0, 2)])
def test_optimize_matches_scipy_minimize_scalar(sharpness, seed):
    optimize = pytest.importorskip("scipy.optimize")
    logits, labels = _synthetic(3000, 10, sharpness, seed)
    ts = TemperatureScaling().fit(logits, labels)
    res = optimize.minimize_scalar(
        lambda u: _nll64(logits, labels, math.exp(u)),
        bounds=(math.log(0.05), math.log(20)),
        method="bounded",
        options={"xatol": 1e-12},
    )
    np.testing.assert_allclose(ts.temperature_, math.exp(res.x), rtol=1e-6)
    assert _nll64(logits, labels, ts.temperature_) <= res.fun + 1e-12
    assert ts.n_softmax_passes_ <= 30


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_optimum_is_a_stationary_point_by_autograd(dtype):
    logits, labels = _synthetic(2000, 7, 1.7, seed=5)
    logits = logits.to(dtype)
    ts = TemperatureScaling().fit(logits, labels)
    log_t = torch.tensor(math.log(ts.temperature_), dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(logits.double() / log_t.exp(), labels)
    (grad,) = torch.autograd.grad(loss, log_t, create_graph=True)
    (curvature,) = torch.autograd.grad(grad, log_t)
    # distance to the minimum in log T by one Newton step: float64 solves to 1e-10, float32 to ~1e-7
    distance = abs(float((grad / curvature).detach()))
    assert distance < (1e-10 if dtype == torch.float64 else 5e-7)


@pytest.mark.parametrize("sharpness", [0.5, 2.5, 4.0])
def test_recovers_the_sharpening_factor(sharpness):
    logits, labels = _synthetic(20000, 10, sharpness, seed=11)
    ts = TemperatureScaling().fit(logits, labels)
    assert abs(ts.temperature_ / sharpness - 1) < 0.05


def test_keeps_argmax_and_max_logit_auroc(refvectors):
    ind, out = refvectors["ood__ind_logits"], refvectors["ood__ood_logits"]
    ts = TemperatureScaling().fit(ind, refvectors["ood__ind_labels"])
    assert ts.temperature_ != pytest.approx(1.0, abs=0.05)
    assert np.array_equal(ts.predict_proba(ind).argmax(1), ind.argmax(1))
    before = ood.ood_auroc(ood.max_logit_score(ind), ood.max_logit_score(out), ood_higher=False)
    after = ood.ood_auroc(
        ood.max_logit_score(ts.transform(ind)),
        ood.max_logit_score(ts.transform(out)),
        ood_higher=False,
    )
    assert float(before) == float(after)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 60),
    c=st.integers(2, 6),
    scale=st.floats(0.01, 30.0),
    seed=st.integers(0, 2**16),
)
def test_fitting_nll_never_increases(n, c, scale, seed):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=g)
    labels[:2] = torch.tensor([0, 1])  # at least two classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # separable draws hit a bound
        ts = TemperatureScaling().fit(logits, labels)
    assert ts.temperature_ > 0
    assert _nll64(logits, labels, ts.temperature_) <= _nll64(logits, labels, 1.0) + 1e-12


def test_perfectly_classified_set_stops_at_bound_with_warning():
    logits = torch.tensor([[3.0, 0.0], [0.0, 2.0], [4.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    with pytest.warns(RuntimeWarning, match="bound"):
        ts = TemperatureScaling(bounds=(0.05, 20.0)).fit(logits, labels)
    assert ts.temperature_ == pytest.approx(0.05, rel=1e-12)
    assert ts.n_softmax_passes_ <= 5


def test_uninformative_set_stops_at_upper_bound_with_warning():
    logits = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([1, 0])  # every prediction wrong: NLL falls as T → ∞
    with pytest.warns(RuntimeWarning, match="bound"):
        ts = TemperatureScaling(bounds=(0.1, 50.0)).fit(logits, labels)
    assert ts.temperature_ == pytest.approx(50.0, rel=1e-12)


@pytest.mark.parametrize(
    ("sharpness", "bounds", "expected"), [(0.3, (0.5, 10.0), 0.5), (4.0, (0.1, 2.0), 2.0)]
)
def test_finite_optimum_outside_the_bounds_stops_at_the_bound(sharpness, bounds, expected):
    logits, labels = _synthetic(3000, 10, sharpness, seed=12)
    with pytest.warns(RuntimeWarning, match="bound"):
        ts = TemperatureScaling(bounds=bounds).fit(logits, labels)
    assert ts.temperature_ == pytest.approx(expected, rel=1e-12)
    assert ts.n_softmax_passes_ <= 5
    inside = TemperatureScaling().fit(logits, labels).temperature_
    assert not bounds[0] <= inside <= bounds[1]  # the unconstrained optimum is really outside


# ---------------------------------------------------------------------------- API
def test_transform_and_predict_proba_are_division_and_softmax():
    logits, labels = _synthetic(500, 4, 2.0, seed=7)
    ts = TemperatureScaling().fit(logits, labels)
    torch.testing.assert_close(ts.transform(logits), logits / ts.temperature_)
    torch.testing.assert_close(
        ts.predict_proba(logits), torch.softmax(logits / ts.temperature_, dim=1)
    )


def test_accepts_numpy_and_returns_numpy_of_same_dtype():
    logits, labels = _synthetic(300, 3, 2.0, seed=8)
    ts = TemperatureScaling().fit(logits.numpy(), labels.numpy())
    out = ts.predict_proba(logits.numpy().astype(np.float64))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert TemperatureScaling().fit(logits, labels).temperature_ == ts.temperature_


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "optimize"}, "method: 'optimize' is no longer a method; use 'nll'"),
        ({"method": "grid"}, "use 'grid_ece' or 'grid_nll'"),
        ({"method": "brier"}, "method"),
        ({"method": "lbfgs"}, "method"),
        ({"method": "grid_nll", "grid": [1.0, -2.0]}, "grid"),
        ({"method": "grid_ece", "grid": []}, "grid"),
        ({"bounds": (2.0, 1.0)}, "bounds"),
        ({"convention": "paper"}, "convention"),
    ],
)
def test_bad_hyper_parameters_raise_at_fit(kwargs, match):
    logits, labels = _synthetic(50, 3, 1.0, seed=9)
    ts = TemperatureScaling(**kwargs)  # construction never validates (scikit-learn rule)
    with pytest.raises(ValueError, match=match):
        ts.fit(logits, labels)
