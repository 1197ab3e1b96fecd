"""Real network outputs (``netcal-cifar-test-probs.npz`` of the ``shared_data`` fixture, skipped
when absent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal import metrics


@pytest.fixture(scope="module")
def networks(shared_data) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    path = shared_data / "netcal-cifar-test-probs.npz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with np.load(path) as d:
        names = sorted(k[: -len("__probs")] for k in d.files if k.endswith("__probs"))
        return {
            n: (torch.from_numpy(d[f"{n}__probs"]), torch.from_numpy(d[f"{n}__labels"]).long())
            for n in names
        }


def test_real_outputs_agree_with_torchmetrics_and_stream(networks) -> None:
    from torchmetrics.functional.classification import multiclass_calibration_error

    assert len(networks) == 5
    for name, (probs, labels) in networks.items():
        c = probs.shape[1]
        conf = probs.max(1).values.double()
        on_edge = ((conf.unsqueeze(1) * 15 - torch.arange(1, 16)).abs() < 1e-5).any(1)
        p, y = probs[~on_edge], labels[~on_edge]
        expected = multiclass_calibration_error(p, y, num_classes=c, n_bins=15, norm="l1")
        # torchmetrics accumulates in float32 (differences ~4e-6 here); a float64 direct
        # computation with the same (k/15, (k+1)/15] bins must agree to rounding
        assert float(metrics.ece(p, y)) == pytest.approx(float(expected), abs=2e-5), name
        conf64, hit = conf.numpy(), (probs.argmax(1) == labels).double().numpy()
        bins = np.clip(np.ceil(conf64 * 15) - 1, 0, 14).astype(int)
        direct = sum(abs(conf64[bins == k].sum() - hit[bins == k].sum()) for k in range(15))
        assert float(metrics.ece(probs, labels)) == pytest.approx(direct / len(conf64), abs=1e-12)
        stream = metrics.CalibrationMetrics(num_classes=c, smooth=False)
        for chunk in range(0, probs.shape[0], 3000):
            stream.update(probs[chunk : chunk + 3000], labels[chunk : chunk + 3000])
        out = stream.compute()
        for key, fn in (
            ("ece", metrics.ece),
            ("adaece", metrics.adaece),
            ("classwise_ece", metrics.classwise_ece),
        ):
            assert float(out[key]) == pytest.approx(float(fn(probs, labels)), abs=1e-7), (name, key)
        # every class occurs as a label here, so the official Classwise-ECE averages over all C
        # columns too and differs only by probabilities that are exactly 0 (none in these files)
        official = metrics.classwise_ece(probs, labels, convention="official")
        assert float(official) == pytest.approx(float(out["classwise_ece"]), abs=1e-7), name
