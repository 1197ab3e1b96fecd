"""Parity with the official implementations' outputs (``refvectors`` fixture, convention="official")
and with their float64 list-based helpers (convention="default")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal import metrics

RTOL = 1e-4  # float32 inputs


def _cases(refvectors: dict[str, np.ndarray]) -> list[str]:
    return sorted({k.split("__")[1] for k in refvectors if k.startswith("metric__")})


@pytest.fixture(scope="module")
def cases(refvectors: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in refvectors.items():
        if key.startswith("metric__"):
            _, case, name = key.split("__", 2)
            out.setdefault(case, {})[name] = value
    assert len(out) >= 9
    return out


def _inputs(case: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(case["logits"]), torch.from_numpy(case["labels"])


# (refvector key, our function, kwargs)
OFFICIAL = [
    ("fc_ece15", metrics.ece, {"n_bins": 15, "convention": "official"}),
    ("fc_adaece15", metrics.adaece, {"n_bins": 15, "convention": "official"}),
    ("dfl_adaece15", metrics.adaece, {"n_bins": 15, "convention": "official"}),
    ("ada_adaece15_mukhoti", metrics.adaece, {"n_bins": 15, "convention": "official"}),
    ("fc_cwece15", metrics.classwise_ece, {"n_bins": 15, "convention": "official"}),
    ("dfl_cwece15", metrics.classwise_ece, {"n_bins": 15, "convention": "official"}),
    ("fc_adaece2", metrics.adaece, {"n_bins": 2, "convention": "official"}),
    ("fc_ece2", metrics.ece, {"n_bins": 2, "convention": "official"}),
    # the list-based helpers bin in float64 with the (k/B, (k+1)/B] rule: our default binning
    ("fc_ece_binned10", metrics.ece, {"n_bins": 10}),
    ("fc_mce_binned10", metrics.mce, {"n_bins": 10}),
    ("fc_l2_binned15", metrics.rmsce, {"n_bins": 15}),
    ("dfl_ece_binned15", metrics.ece, {"n_bins": 15}),
    ("dfl_mce_binned15", metrics.mce, {"n_bins": 15}),
    ("nll_mean", metrics.nll, {}),
    ("accuracy", metrics.accuracy, {}),
    ("dfl_brier_BS", metrics.brier, {}),
]


@pytest.mark.parametrize(("key", "fn", "kwargs"), OFFICIAL, ids=[k for k, _, _ in OFFICIAL])
def test_metric_matches_official_code(cases, key, fn, kwargs) -> None:
    checked = 0
    for name, case in cases.items():
        if key not in case:
            continue
        if key == "dfl_brier_BS" and case["logits"].shape[1] == 2:
            # The DFL code one-hots with sklearn label_binarize, which gives ONE column for two
            # classes, so its binary "Brier" is sum_c (p_c - y)^2: a bug we do not reproduce.
            p1 = torch.from_numpy(case["logits"]).double().softmax(1)
            y = torch.from_numpy(case["labels"]).double().unsqueeze(1)
            np.testing.assert_allclose(((p1 - y) ** 2).sum(1).mean(), case[key], rtol=RTOL)
            continue
        logits, labels = _inputs(case)
        got = float(fn(logits, labels, from_logits=True, **kwargs))
        np.testing.assert_allclose(got, float(case[key]), rtol=RTOL, atol=1e-7, err_msg=name)
        checked += 1
    assert checked >= 1


def test_average_calibration_error_over_nonempty_bins_matches_official(cases) -> None:
    from focalcal.metrics._core import binned_calibration_error, top_label, top_label_update

    for name, case in cases.items():
        logits, labels = _inputs(case)
        confidence, correct = top_label(logits.softmax(1), labels)
        sums = top_label_update(confidence, correct, 10)  # default binning = the list helpers'
        got = float(binned_calibration_error(sums, labels.numel(), "mean"))
        np.testing.assert_allclose(got, case["fc_ace_binned10"], rtol=RTOL, err_msg=name)


def test_per_bin_statistics_match_official(cases) -> None:
    for name, case in cases.items():
        logits, labels = _inputs(case)
        width = metrics.calibration_bins(logits, labels, n_bins=15, from_logits=True)
        for field, ref in [("proportion", "prop"), ("accuracy", "acc"), ("confidence", "conf")]:
            np.testing.assert_allclose(
                getattr(width, field).numpy(),
                case[f"bins15_{ref}"],
                rtol=RTOL,
                atol=1e-7,
                err_msg=f"{name} {field}",
            )
        mass = metrics.calibration_bins(
            logits, labels, n_bins=15, strategy="mass", convention="official", from_logits=True
        )
        np.testing.assert_allclose(mass.edges[:-1].numpy(), case["adabins15_lower"], rtol=RTOL)
        np.testing.assert_allclose(mass.edges[1:].numpy(), case["adabins15_upper"], rtol=RTOL)
        for field, ref in [
            ("proportion", "prop"),
            ("accuracy", "acc"),
            ("confidence", "conf"),
            ("gap", "gap"),
        ]:
            np.testing.assert_allclose(
                getattr(mass, field).numpy(),
                case[f"adabins15_{ref}"],
                rtol=RTOL,
                atol=1e-7,
                err_msg=f"{name} {field}",
            )


@pytest.mark.parametrize(("tag", "temperature"), [("preT", 1.0), ("T2.5", 2.5)])
def test_ood_auroc_matches_official(refvectors, tag: str, temperature: float) -> None:
    from focalcal.metrics import ood

    ind = torch.from_numpy(refvectors["ood__ind_logits"]) / temperature
    out = torch.from_numpy(refvectors["ood__ood_logits"]) / temperature
    entropy = ood.ood_auroc(ood.entropy_score(ind), ood.entropy_score(out))
    np.testing.assert_allclose(float(entropy), refvectors[f"ood__{tag}__auroc_entropy"], rtol=RTOL)
    # the official max-softmax AUROC labels in-distribution positive: same as OOD-positive on -msp
    msp = ood.ood_auroc(ood.max_softmax_score(ind), ood.max_softmax_score(out), ood_higher=False)
    np.testing.assert_allclose(float(msp), refvectors[f"ood__{tag}__auroc_confidence"], rtol=RTOL)
    via_temperature = ood.ood_auroc(
        ood.entropy_score(ind * temperature, temperature=temperature),
        ood.entropy_score(out * temperature, temperature=temperature),
    )
    np.testing.assert_allclose(float(via_temperature), float(entropy), rtol=1e-6)


def test_streaming_official_matches_official_values(cases) -> None:
    case = cases["labels_missing_top_classes"]
    logits, labels = _inputs(case)
    m = metrics.CalibrationMetrics(convention="official", from_logits=True)
    for chunk in range(0, logits.shape[0], 128):
        m.update(logits[chunk : chunk + 128], labels[chunk : chunk + 128])
    out = m.compute()
    for ours, key in [
        ("ece", "fc_ece15"),
        ("adaece", "fc_adaece15"),
        ("classwise_ece", "fc_cwece15"),
        ("nll", "nll_mean"),
        ("accuracy", "accuracy"),
    ]:
        np.testing.assert_allclose(float(out[ours]), case[key], rtol=RTOL, err_msg=ours)
