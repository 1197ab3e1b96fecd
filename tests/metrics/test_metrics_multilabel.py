"""Binary and per-label (marginal) ECE against torchmetrics' binary calibration error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_calibration_error

from focalcal.metrics import BinaryECE, MultilabelECE, binary_ece, multilabel_ece


def _data(n=400, labels=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, labels, generator=g)
    y = (torch.rand(n, labels, generator=g) < p**1.5).long()  # miscalibrated on purpose
    return p, y


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_binary_ece_equals_torchmetrics(n_bins) -> None:
    p, y = _data()
    for column in range(p.shape[1]):
        expected = binary_calibration_error(p[:, column], y[:, column], n_bins=n_bins)
        got = binary_ece(p[:, column], y[:, column], n_bins=n_bins)
        assert float(got) == pytest.approx(float(expected), abs=1e-6)


def test_multilabel_ece_is_the_mean_of_per_label_binary_ece() -> None:
    p, y = _data()
    per_label = multilabel_ece(p, y, average="none")
    expected = [float(binary_calibration_error(p[:, k], y[:, k], n_bins=15)) for k in range(4)]
    assert per_label.tolist() == pytest.approx(expected, abs=1e-6)
    assert float(multilabel_ece(p, y)) == pytest.approx(np.mean(expected), abs=1e-6)


def test_from_logits_applies_the_sigmoid_and_numpy_comes_back_numpy() -> None:
    p, y = _data()
    logits = torch.logit(p.double())
    assert float(multilabel_ece(logits, y, from_logits=True)) == pytest.approx(
        float(multilabel_ece(p, y)), abs=1e-6
    )
    out = binary_ece(p[:, 0].numpy(), y[:, 0].numpy())
    assert isinstance(out, np.ndarray)


def test_ignore_index_leaves_entries_out_of_their_column() -> None:
    p, y = _data()
    masked = y.clone()
    masked[:100, 1] = -1
    got = multilabel_ece(p, masked, average="none", ignore_index=-1)
    assert float(got[1]) == pytest.approx(float(binary_ece(p[100:, 1], y[100:, 1])), abs=1e-12)
    assert float(got[0]) == pytest.approx(float(binary_ece(p[:, 0], y[:, 0])), abs=1e-12)


def test_streaming_equals_functional_on_the_concatenated_batches() -> None:
    p, y = _data()
    multi, binary = MultilabelECE(n_bins=10), BinaryECE(n_bins=10)
    for rows in (slice(0, 150), slice(150, 151), slice(151, 400)):
        multi.update(p[rows], y[rows])
        binary.update(p[rows, 2], y[rows, 2])
    assert float(multi.compute()) == pytest.approx(float(multilabel_ece(p, y, n_bins=10)))
    assert float(binary.compute()) == pytest.approx(float(binary_ece(p[:, 2], y[:, 2], n_bins=10)))
    none = MultilabelECE(average="none")
    none.update(p, y)
    assert torch.allclose(none.compute(), multilabel_ece(p, y, average="none"))


def test_perfect_calibration_gives_a_small_error_and_bias_a_large_one() -> None:
    g = torch.Generator().manual_seed(1)
    p = torch.rand(20000, generator=g)
    y = (torch.rand(20000, generator=g) < p).long()
    assert float(binary_ece(p, y)) < 0.02
    assert float(binary_ece((p + 0.2).clamp(max=1), y)) > 0.15


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda p, y: binary_ece(p, y[:, 0]), r"probs: expected a non-empty floating tensor of shape \(N,\)"),
        (lambda p, y: multilabel_ece(p, y[:, :2]), r"labels: expected the shape of probs \(400, 4\)"),
        (lambda p, y: multilabel_ece(p, y + 1), r"labels: expected 0/1 values, got values \[2"),
        (lambda p, y: multilabel_ece(p * 3 - 1, y), "pass from_logits=True"),
        (lambda p, y: multilabel_ece(p, torch.full_like(y, -1), ignore_index=-1), "every entry equals ignore_index"),
        (lambda p, y: multilabel_ece(p, y, average="micro"), "average: expected one of"),
        (lambda p, y: multilabel_ece(p, y, n_bins=0), "n_bins: expected an integer >= 1"),
    ],
)  # fmt: skip
def test_bad_input_raises_a_clear_error(call, pattern) -> None:
    p, y = _data()
    with pytest.raises(ValueError, match=pattern):
        call(p, y)


def test_docstring_examples_run() -> None:
    import doctest

    from focalcal.metrics import multilabel

    result = doctest.testmod(multilabel)
    assert result.attempted > 0 and result.failed == 0
