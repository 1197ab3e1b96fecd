"""Real network outputs (netcal, CIFAR-10/100 test sets): fit on one half, evaluate on the other."""

from __future__ import annotations

import numpy as np
import pytest

from focalcal import metrics
from focalcal.calibration import get_calibrator

NETWORKS = [
    "wideresnet_16_4_cifar_10",
    "lenet_5_cifar_10",
    "wideresnet_16_4_cifar_100",
    "densenet_bc_100_cifar_100",
    "lenet_5_cifar_100",
]


@pytest.fixture(scope="module")
def netcal(shared_data):
    path = shared_data / "netcal-cifar-test-probs.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _halves(netcal, network: str):
    probs = netcal[f"{network}__probs"].astype(np.float64)
    labels = netcal[f"{network}__labels"].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    fit, held = order[: len(order) // 2], order[len(order) // 2 :]
    logits = np.log(probs)  # stored probabilities have no exact zeros
    return logits[fit], labels[fit], logits[held], labels[held], probs[held]


@pytest.mark.parametrize("network", NETWORKS)
def test_temperature_scaling_lowers_held_out_ece_and_nll(netcal, network):
    z_fit, y_fit, z_held, y_held, p_held = _halves(netcal, network)
    ts = get_calibrator("temperature").fit(z_fit, y_fit)
    calibrated = ts.predict_proba(z_held)
    before = float(metrics.ece(p_held, y_held))
    after = float(metrics.ece(calibrated, y_held))
    assert after < before
    assert float(metrics.nll(calibrated, y_held)) < float(metrics.nll(p_held, y_held))
    assert np.array_equal(calibrated.argmax(1), p_held.argmax(1))  # accuracy unchanged
    # the grid search of the papers lands within one grid step of the exact NLL optimum
    grid = get_calibrator("temperature", method="grid_nll").fit(z_fit, y_fit)
    assert abs(grid.temperature_ - ts.temperature_) <= 0.05 + 1e-9


@pytest.mark.parametrize("network", NETWORKS)
def test_histogram_binning_gives_valid_probabilities_on_real_outputs(netcal, network):
    z_fit, y_fit, z_held, y_held, p_held = _halves(netcal, network)
    calibrated = get_calibrator("histogram").fit(z_fit, y_fit).predict_proba(z_held)
    np.testing.assert_allclose(calibrated.sum(1), 1.0, rtol=1e-12)
    assert (calibrated > 0).all()
    if network.endswith("cifar_10"):  # 10 classes: one-vs-rest binning calibrates the top label
        assert float(metrics.ece(calibrated, y_held)) < float(metrics.ece(p_held, y_held))


@pytest.mark.parametrize(
    ("network", "name"),
    [
        ("wideresnet_16_4_cifar_10", "vector"),
        ("wideresnet_16_4_cifar_10", "matrix"),
        ("lenet_5_cifar_10", "isotonic"),
        ("densenet_bc_100_cifar_100", "isotonic"),
    ],
)
def test_other_calibrators_lower_held_out_ece(netcal, network, name):
    z_fit, y_fit, z_held, y_held, p_held = _halves(netcal, network)
    calibrated = get_calibrator(name).fit(z_fit, y_fit).predict_proba(z_held)
    np.testing.assert_allclose(calibrated.sum(1), 1.0, rtol=1e-10)
    assert float(metrics.ece(calibrated, y_held)) < float(metrics.ece(p_held, y_held))
    if name != "isotonic":  # the affine maps are fitted by NLL
        assert float(metrics.nll(calibrated, y_held)) < float(metrics.nll(p_held, y_held))
