"""A user's mistake never gives a silent wrong answer or a raw traceback: boolean options are
checked as booleans, out-of-range labels are refused even with ``validate=False``, low-precision
softmax outputs are accepted as probabilities (logits still refused), and the streaming metrics
explain a changed class count or a ``compute()`` before any ``update``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal import metrics
from focalcal._validation import check_bool
from focalcal.metrics import ood
from focalcal.metrics.binning import assign_bins, classwise_bin_sums, equal_width_edges

PROBS = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
LABELS = torch.tensor([0, 1])
FUNCTIONAL = [
    getattr(metrics, name)
    for name in "ece adaece classwise_ece mce rmsce nll brier accuracy error smooth_ece".split()
] + [metrics.calibration_bins]
STREAMING = (
    "ECE MCE RMSCE AdaECE ClasswiseECE SmoothECE NLL Brier Accuracy CalibrationMetrics".split()
)
BOOL_MESSAGE = r"{}: expected a bool \(True or False\), got {}"


# ---------------------------------------------------------------------------- boolean options
def test_check_bool_takes_booleans_only() -> None:
    assert check_bool(True, "x") is True and check_bool(np.bool_(False), "x") is False
    for value, shown in [("false", "str 'false'"), (0, "int 0"), (None, "NoneType None")]:
        with pytest.raises(TypeError, match=BOOL_MESSAGE.format("flag", shown)):
            check_bool(value, "flag")


@pytest.mark.parametrize("fn", [ood.ood_auroc, ood.ood_aupr, ood.fpr_at_95_tpr])
def test_ood_higher_string_is_refused_not_taken_as_true(fn) -> None:
    s_in, s_out = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0.8, 0.9])
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("ood_higher", "str 'false'")):
        fn(s_in, s_out, ood_higher="false")
    # the real False flips the direction: a perfect detector becomes a perfectly wrong one
    assert float(ood.ood_auroc(s_in, s_out, ood_higher=False)) == 0.0


@pytest.mark.parametrize("fn", FUNCTIONAL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("option", ["from_logits", "validate"])
def test_functional_bool_options(fn, option: str) -> None:
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format(option, "str 'no'")):
        fn(PROBS, LABELS, **{option: "no"})


def test_streaming_bootstrap_and_binning_bool_options() -> None:
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("from_logits", "str 'yes'")):
        metrics.ECE(from_logits="yes")
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("validate", "int 0")):
        metrics.CalibrationMetrics(validate=0)
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("smooth", "str 'False'")):
        metrics.CalibrationMetrics(smooth="False")
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("from_logits", "str 'no'")):
        metrics.bootstrap_ci("ece", PROBS, LABELS, from_logits="no")
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("higher_is_better", "str 'true'")):
        metrics.paired_bootstrap("ece", PROBS, PROBS, LABELS, higher_is_better="true")
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("exact", "str 'no'")):
        assign_bins(PROBS[:, 0], equal_width_edges(4), exact="no")
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("exclude_lowest", "int 1")):
        classwise_bin_sums(PROBS, LABELS, equal_width_edges(4), exclude_lowest=1)
    with pytest.raises(TypeError, match=BOOL_MESSAGE.format("official", "str 'yes'")):
        equal_width_edges(4, official="yes")


# ---------------------------------------------------------------------------- labels out of range
@pytest.mark.parametrize("fn", FUNCTIONAL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [2, -1, 255])
def test_out_of_range_labels_refused_even_without_validation(fn, bad: int) -> None:
    labels = torch.tensor([0, bad])
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 2\)"):
        fn(PROBS, labels, validate=False)
    # ignore_index still drops its items before the check
    fn(PROBS, labels, validate=False, ignore_index=bad)


def test_out_of_range_labels_refused_by_streaming_and_bootstrap_without_validation() -> None:
    for name in STREAMING:
        m = getattr(metrics, name)(validate=False)
        with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 2\)"):
            m.update(PROBS, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 2\)"):
        metrics.bootstrap_ci("ece", PROBS, torch.tensor([3, 1]), validate=False)


# ---------------------------------------------------------------------------- probability dtypes
@pytest.mark.parametrize(
    ("dtype", "classes"),
    [(torch.bfloat16, 10), (torch.bfloat16, 1000), (torch.float16, 100), (torch.bfloat16, 2)],
)
def test_low_precision_softmax_is_accepted_as_probabilities(dtype, classes: int) -> None:
    g = torch.Generator().manual_seed(classes)
    logits = 3 * torch.randn(2000, classes, generator=g)
    labels = torch.randint(0, classes, (2000,), generator=g)
    for probs in (logits.to(dtype).softmax(1), logits.softmax(1).to(dtype)):
        worst = float((probs.float().sum(1) - 1).abs().max())
        assert worst > 1e-3 or dtype == torch.float16  # beyond the float32 tolerance
        for fn in (metrics.ece, metrics.classwise_ece, metrics.nll, metrics.brier, metrics.adaece):
            # the same values in float32, without the probability check
            expected = fn(probs.float(), labels, validate=False)
            assert float(fn(probs, labels)) == pytest.approx(float(expected), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_or_unnormalised_scores_are_still_refused(dtype) -> None:
    g = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(100, 10, generator=g)).to(dtype)
    labels = torch.randint(0, 10, (100,), generator=g)
    with pytest.raises(ValueError, match=r"probs: expected probabilities.*from_logits=True"):
        metrics.ece(logits, labels)
    scores = torch.sigmoid(logits.float()).to(dtype)  # in [0, 1] but rows sum to ~5
    with pytest.raises(ValueError, match="probs: expected probabilities"):
        metrics.ece(scores, labels)
    slightly_off = logits.float().softmax(1).to(dtype) * 1.03  # 3% off: beyond rounding
    with pytest.raises(ValueError, match=r"row sums off by up to 0\.03"):
        metrics.ece(slightly_off, labels)


def test_float32_tolerance_is_unchanged() -> None:
    probs = torch.tensor([[0.6, 0.4015]])  # off by 1.5e-3: more than float32 rounding explains
    with pytest.raises(ValueError, match=r"tolerance 0\.001"):
        metrics.ece(probs, torch.tensor([0]))


# ---------------------------------------------------------------------------- streaming state
@pytest.mark.parametrize("name", ["ClasswiseECE", "CalibrationMetrics"])
def test_streaming_class_count_change_is_a_clear_error(name: str) -> None:
    logits3, logits5 = torch.randn(4, 3), torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 0])
    m = getattr(metrics, name)(from_logits=True)
    m.update(logits3, labels)
    with pytest.raises(
        ValueError,
        match=r"probs: expected 3 classes \(set by the first update\), got shape \(4, 5\)",
    ):
        m.update(logits5, labels)
    sized = getattr(metrics, name)(from_logits=True, num_classes=5)
    with pytest.raises(ValueError, match=r"expected 5 classes \(set by num_classes\)"):
        sized.update(logits3, labels)
    m.reset()  # reset() forgets the class count
    m.update(logits5, labels)
    value = m.compute()
    value = value["classwise_ece"] if isinstance(value, dict) else value
    expected = metrics.classwise_ece(logits5, labels, from_logits=True)
    assert float(value) == pytest.approx(float(expected), abs=1e-7)


@pytest.mark.parametrize("name", STREAMING)
def test_compute_before_update_is_a_clear_error(name: str) -> None:
    m = getattr(metrics, name)()
    with pytest.warns(UserWarning, match="before the ``update``"):  # torchmetrics' own warning
        with pytest.raises(
            RuntimeError, match=rf"{name}\.compute\(\): no samples yet; call update"
        ):
            m.compute()
    m.update(PROBS, LABELS)
    m.compute()
    m.reset()
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="no samples yet"):
        m.compute()
