"""Every calibrator: scikit-learn conventions, kinds in/out, properties, references, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from focalcal.calibration import (
    CALIBRATORS,
    HistogramBinning,
    IsotonicCalibration,
    MatrixScaling,
    NotFittedError,
    TemperatureScaling,
    VectorScaling,
    get_calibrator,
)

NAMES = ["temperature", "vector", "matrix", "histogram", "isotonic"]


def _data(n: int = 600, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Over-confident logits with labels that agree with them most of the time."""
    g = torch.Generator().manual_seed(seed)
    true_logits = 1.5 * torch.randn(n, c, generator=g, dtype=torch.float64)
    p = torch.softmax(true_logits, dim=1)
    labels = torch.multinomial(p, 1, generator=g).squeeze(1)
    return 3.0 * true_logits + 0.3 * torch.arange(c, dtype=torch.float64), labels


# ---------------------------------------------------------------------------- registry
def test_registry_names_and_aliases():
    assert set(NAMES) <= set(CALIBRATORS.names())
    assert isinstance(get_calibrator("Temperature-Scaling"), TemperatureScaling)
    assert isinstance(get_calibrator("odir", reg_intercept=0.5), MatrixScaling)
    assert get_calibrator("ts", method="grid_ece").method == "grid_ece"
    with pytest.raises(ValueError, match=r"unknown calibrator 'platt'.*temperature"):
        get_calibrator("platt")


# ---------------------------------------------------------------------------- sklearn protocol
@pytest.mark.parametrize("name", NAMES)
def test_sklearn_clone_get_set_params(name):
    base = pytest.importorskip("sklearn.base")
    cal = get_calibrator(name)
    clone = base.clone(cal)
    assert type(clone) is type(cal) and clone is not cal
    assert clone.get_params() == cal.get_params()
    params = cal.get_params()
    if params:
        key = next(iter(params))
        assert cal.set_params(**{key: params[key]}) is cal
    with pytest.raises(ValueError, match="unknown parameter 'nonsense'"):
        cal.set_params(nonsense=1)
    assert repr(cal).startswith(type(cal).__name__ + "(")


def test_clone_keeps_hyper_parameters_and_drops_fitted_state():
    base = pytest.importorskip("sklearn.base")
    z, y = _data()
    ms = MatrixScaling(reg_off_diagonal=3.0, reg_intercept=0.1).fit(z, y)
    fresh = base.clone(ms)
    assert fresh.reg_off_diagonal == 3.0 and fresh.reg_intercept == 0.1
    assert not hasattr(fresh, "n_classes_")


def test_clone_copies_list_hyper_parameters():
    base = pytest.importorskip("sklearn.base")
    ts = TemperatureScaling("grid_ece", grid=[0.5, 1.0, 2.0], bounds=(0.1, 10.0))
    fresh = base.clone(ts)
    assert fresh.grid == [0.5, 1.0, 2.0] and fresh.grid is not ts.grid
    assert fresh.bounds == (0.1, 10.0)


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip_predicts_the_same(name):
    z, y = _data(n=300)
    cal = get_calibrator(name).fit(z, y)
    again = pickle.loads(pickle.dumps(cal))
    torch.testing.assert_close(again.predict_proba(z), cal.predict_proba(z), rtol=0, atol=0)


def test_isotonic_without_scikit_learn_names_the_extra(monkeypatch):
    import focalcal.calibration.nonparametric as module

    def missing(name: str, extra: str):
        raise ImportError(f'{name!r} is required; install it with: pip install "focalcal[{extra}]"')

    monkeypatch.setattr(module, "require", missing)
    z, y = _data(n=50)
    with pytest.raises(ImportError, match=r"focalcal\[calibration\]"):
        IsotonicCalibration().fit(z, y)


# ---------------------------------------------------------------------------- kinds in, kinds out
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_kind_and_dtype_out_rows_sum_to_one(name, dtype):
    z, y = _data()
    z = z.to(dtype)
    cal = get_calibrator(name).fit(z, y)
    probs = cal.predict_proba(z)
    assert isinstance(probs, torch.Tensor) and probs.dtype == dtype and probs.shape == z.shape
    assert bool((probs >= 0).all())
    torch.testing.assert_close(probs.sum(1), torch.ones(len(z), dtype=dtype))
    logits = cal.transform(z)
    assert isinstance(logits, torch.Tensor) and logits.dtype == dtype
    assert bool(torch.isfinite(logits).all())
    torch.testing.assert_close(torch.softmax(logits, 1), probs)

    if dtype == torch.float64:
        return  # numpy in / numpy out is checked once, in float32
    np_cal = get_calibrator(name).fit(z.numpy(), y.numpy().astype(np.int32))
    np_probs = np_cal.predict_proba(z.numpy())
    assert isinstance(np_probs, np.ndarray) and np_probs.dtype == z.numpy().dtype
    np.testing.assert_allclose(np_probs, probs.numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(np_cal.fit_transform(z.numpy(), y.numpy()), np.ndarray)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_in_cuda_out(name):
    z, y = _data()
    cpu = get_calibrator(name).fit(z, y).predict_proba(z)
    cal = get_calibrator(name).fit(z.cuda(), y.cuda())
    out = cal.predict_proba(z.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_dense_predictions_are_calibrated_per_item(name):
    """(N, C, H, W) logits with (N, H, W) labels equal the same items laid out as rows."""
    z, y = _data(n=600, c=4, seed=3)
    dense_z = z.reshape(10, 6, 10, 4).permute(0, 3, 1, 2)  # (N, C, H, W); item (n, h, w) = row
    dense_y = y.reshape(10, 6, 10)
    dense = get_calibrator(name).fit(dense_z, dense_y)
    rows = get_calibrator(name).fit(z, y)
    out = dense.predict_proba(dense_z)
    assert out.shape == dense_z.shape
    torch.testing.assert_close(out.permute(0, 2, 3, 1).reshape(600, 4), rows.predict_proba(z))
    torch.testing.assert_close(dense.transform(dense_z).softmax(1), out)


# ---------------------------------------------------------------------------- properties
@pytest.mark.parametrize("name", NAMES)
def test_only_the_probabilities_matter(name):
    """Logits and log-probabilities (logits shifted per row) give the same calibrated output."""
    z, y = _data(seed=1)
    a = get_calibrator(name).fit(z, y).predict_proba(z)
    b = get_calibrator(name).fit(F.log_softmax(z, 1), y).predict_proba(F.log_softmax(z, 1))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_relabelling_classes_permutes_the_output(name):
    z, y = _data(seed=2)
    perm = torch.tensor([2, 0, 3, 1])
    inverse = torch.argsort(perm)
    a = get_calibrator(name).fit(z, y).predict_proba(z)
    b = get_calibrator(name).fit(z[:, perm], inverse[y]).predict_proba(z[:, perm])
    torch.testing.assert_close(b, a[:, perm], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["temperature", "vector", "matrix"])
def test_fitting_nll_never_increases(name):
    for seed in range(3):
        z, y = _data(n=300, seed=seed)
        after = get_calibrator(name).fit(z, y).transform(z)
        assert float(F.cross_entropy(after, y)) <= float(F.cross_entropy(z, y)) + 1e-12


def _stationarity(cal, z, y, penalty) -> list[torch.Tensor]:
    params = [cal.coef_.clone().requires_grad_(), cal.intercept_.clone().requires_grad_()]
    zc = z - z.mean(1, keepdim=True)
    w, b = params
    out = zc @ w.T + b if w.ndim == 2 else zc * w + b
    loss = F.cross_entropy(out, y) + penalty(w, b)
    return torch.autograd.grad(loss, params)


def test_matrix_scaling_is_a_stationary_point_of_the_odir_objective():
    z, y = _data(n=800, c=5, seed=4)
    lam, mu, k = 2.0, 0.5, 5
    ms = MatrixScaling(reg_off_diagonal=lam, reg_intercept=mu, tol=1e-10, max_iter=2000).fit(z, y)

    def odir(w, b):  # Kull et al. 2019, written out independently
        off = sum(w[i, j] ** 2 for i in range(k) for j in range(k) if i != j)
        return lam / (k * (k - 1)) * off + mu / k * (b**2).sum()

    for grad in _stationarity(ms, z, y, odir):
        assert float(grad.abs().max()) < 1e-6


def test_vector_scaling_is_a_stationary_point_of_the_nll():
    z, y = _data(n=800, c=5, seed=5)
    vs = VectorScaling(tol=1e-10, max_iter=2000).fit(z, y)
    for grad in _stationarity(vs, z, y, lambda w, b: 0.0 * b.sum()):
        assert float(grad.abs().max()) < 1e-6


def test_strongly_regularised_matrix_scaling_is_vector_scaling_without_intercept():
    z, y = _data(n=800, c=4, seed=6)
    strong = {"tol": 1e-10, "max_iter": 2000}
    ms = MatrixScaling(reg_off_diagonal=1e4, reg_intercept=1e4, **strong).fit(z, y)
    vs = VectorScaling(reg_intercept=1e4, **strong).fit(z, y)
    off_diagonal = ms.coef_ - torch.diag(ms.coef_.diagonal())
    assert float(off_diagonal.abs().max()) < 1e-3 and float(ms.intercept_.abs().max()) < 1e-3
    torch.testing.assert_close(ms.coef_.diagonal(), vs.coef_, rtol=0, atol=1e-3)
    torch.testing.assert_close(ms.predict_proba(z), vs.predict_proba(z), rtol=0, atol=2e-3)


def test_histogram_binning_matches_a_direct_loop():
    z, y = _data(n=700, c=3, seed=7)
    n_bins = 6
    hb = HistogramBinning(n_bins=n_bins).fit(z, y)
    p = torch.softmax(z, 1).numpy()
    yy = y.numpy()
    expected = np.empty((3, n_bins))
    for c in range(3):
        for b in range(n_bins):
            lo, hi = b / n_bins, (b + 1) / n_bins
            inside = (p[:, c] > lo) & (p[:, c] <= hi) if b else p[:, c] <= hi
            expected[c, b] = (yy[inside] == c).mean() if inside.any() else (lo + hi) / 2
    np.testing.assert_allclose(hb.bin_values_.numpy(), expected, rtol=1e-12)
    # predict: look the probability's bin up, then renormalise the row
    q = np.stack(
        [
            expected[c, np.clip(np.ceil(p[:, c] * n_bins).astype(int) - 1, 0, None)]
            for c in range(3)
        ],
        1,
    )
    q = np.maximum(q, 1e-12)
    np.testing.assert_allclose(hb.predict_proba(z).numpy(), q / q.sum(1, keepdims=True), rtol=1e-9)


def test_histogram_quantile_bins_hold_equal_mass():
    z, y = _data(n=900, c=3, seed=8)
    hb = HistogramBinning(n_bins=5, strategy="quantile").fit(z, y)
    assert hb.bin_edges_.shape == (3, 6)
    counts = hb.bin_counts_.numpy()
    assert counts.sum(1).tolist() == [900, 900, 900]
    assert counts.min() >= 170 and counts.max() <= 190


def test_isotonic_matches_sklearn_one_vs_rest_then_renormalised():
    isotonic = pytest.importorskip("sklearn.isotonic")
    z, y = _data(n=700, c=4, seed=9)
    cal = IsotonicCalibration().fit(z, y)
    p_fit = torch.softmax(z, 1).numpy()
    z_new, _ = _data(n=300, c=4, seed=10)
    p_new = torch.softmax(z_new, 1).numpy()
    cols = []
    for c in range(4):
        reg = isotonic.IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
        cols.append(reg.fit(p_fit[:, c], (y.numpy() == c).astype(float)).predict(p_new[:, c]))
    q = np.maximum(np.stack(cols, 1), 1e-12)
    np.testing.assert_allclose(
        cal.predict_proba(z_new).numpy(), q / q.sum(1, keepdims=True), rtol=1e-9, atol=1e-12
    )


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", NAMES)
def test_transform_before_fit_raises(name):
    cal = get_calibrator(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        cal.transform(torch.zeros(2, 3))
    with pytest.raises(ValueError):  # NotFittedError is a ValueError too
        cal.predict_proba(np.zeros((2, 3)))


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_clear_errors(name):
    z, y = _data(n=50, c=4)
    cal = get_calibrator(name)
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 4\)"):
        cal.fit(z, torch.where(y == 0, 4, y))
    with pytest.raises(ValueError, match="labels: expected class indices"):
        cal.fit(z, torch.where(y == 0, -1, y))
    bad = z.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="logits: expected finite values"):
        cal.fit(bad, y)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="logits: expected finite values"):
        cal.fit(bad, y)
    with pytest.raises(ValueError, match="at least 2 distinct classes"):
        cal.fit(z, torch.full_like(y, 2))
    with pytest.raises(ValueError, match="at least one sample"):
        cal.fit(z[:0], y[:0])
    with pytest.raises(ValueError, match=r"labels: expected shape \(49,\)"):
        cal.fit(z[:49], y)
    with pytest.raises(TypeError, match="labels: expected integer class indices"):
        cal.fit(z, y.double())
    with pytest.raises(ValueError, match=r"logits: expected shape \(N, C\) or \(N, C, d1, ...\)"):
        cal.fit(z[:, 0], y)
    with pytest.raises(TypeError, match=r"logits: expected a torch\.Tensor or numpy\.ndarray"):
        cal.fit("logits", y)
    cal.fit(z, y)
    with pytest.raises(ValueError, match=r"logits: expected 4 classes \(as in fit\)"):
        cal.transform(z[:, :3])
    with pytest.raises(ValueError, match="logits: expected finite values"):
        cal.predict_proba(bad)


@pytest.mark.parametrize(
    ("cal", "match"),
    [
        (HistogramBinning(n_bins=0), "n_bins"),
        (HistogramBinning(strategy="kmeans"), "strategy"),
        (MatrixScaling(reg_off_diagonal=-1.0), "reg_off_diagonal"),
        (VectorScaling(reg_intercept=float("nan")), "reg_intercept"),
        (VectorScaling(max_iter=0), "max_iter"),
    ],
)
def test_bad_hyper_parameters_raise_at_fit(cal, match):
    z, y = _data(n=40)
    with pytest.raises(ValueError, match=match):
        cal.fit(z, y)


# ---------------------------------------------------------------------------- base classes
def test_logit_and_probability_calibrators_derive_the_other_output():
    from focalcal.calibration import LogitCalibrator, ProbabilityCalibrator

    z, y = _data(n=50)

    class Shift(LogitCalibrator):  # implements only the logits
        def _fit(self, z, y):
            self.shift_ = z.new_tensor([1.0, 0.0, 0.0, -1.0])

        def _transform(self, z):
            return z + self.shift_

    class Frequencies(ProbabilityCalibrator):  # implements only the probabilities
        def _fit(self, z, y):
            self.prior_ = torch.bincount(y, minlength=z.shape[1]).to(z.dtype) / len(y)

        def _predict_proba(self, z):
            return self.prior_.expand(len(z), -1)

    shift = Shift().fit(z, y)
    torch.testing.assert_close(shift.predict_proba(z), torch.softmax(z + shift.shift_, 1))
    freq = Frequencies().fit(z, y)
    torch.testing.assert_close(freq.transform(z), freq.prior_.log().expand(len(z), -1))
    assert isinstance(TemperatureScaling(), LogitCalibrator)
    assert isinstance(HistogramBinning(), ProbabilityCalibrator)
    assert isinstance(IsotonicCalibration(), ProbabilityCalibrator)

    class Incomplete(LogitCalibrator):
        def _fit(self, z, y):
            pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
