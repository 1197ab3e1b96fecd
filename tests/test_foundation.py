"""Tests of the shared registry and validation helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal._registry import Registry
from focalcal._validation import as_tensor, check_logits, check_probabilities, check_targets
from focalcal.metrics.binning import assign_bins, bin_sums, equal_width_edges


def test_registry_unknown_name_lists_valid_ones() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("one", "uno")(lambda: 1)
    assert reg.get("UNO") == 1
    with pytest.raises(ValueError, match="unknown thing 'two'; expected one of: one, uno"):
        reg.get("two")


def test_check_targets_names_argument_and_range() -> None:
    logits = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"target: expected class indices in \[0, 4\)"):
        check_targets(torch.tensor([0, 4, 1]), logits.shape, 4)
    with pytest.raises(TypeError, match="target: expected integer"):
        check_targets(torch.tensor([0.0, 1.0, 1.0]), logits.shape, 4)
    check_targets(torch.tensor([0, -100, 3]), logits.shape, 4, ignore_index=-100)


def test_check_logits_rejects_nan_and_rank() -> None:
    with pytest.raises(ValueError, match="logits: expected finite"):
        check_logits(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"logits: expected shape \(N, C\)"):
        check_logits(torch.zeros(3))


def test_check_probabilities_hints_from_logits() -> None:
    with pytest.raises(ValueError, match="from_logits=True"):
        check_probabilities(torch.tensor([[2.0, -1.0]]))
    check_probabilities(torch.tensor([[0.25, 0.75]]))


def test_as_tensor_reports_numpy() -> None:
    t, was_numpy = as_tensor(np.zeros((2, 2)), "x")
    assert was_numpy and isinstance(t, torch.Tensor)


def test_bins_are_left_open_right_closed_against_direct_loop() -> None:
    rng = np.random.default_rng(0)
    conf = np.concatenate([rng.random(500), np.arange(16) / 15]).astype(np.float32)
    correct = rng.random(conf.size) < conf
    n_bins = 15
    idx = assign_bins(torch.from_numpy(conf), equal_width_edges(n_bins))
    sums = bin_sums(idx, torch.from_numpy(conf), torch.from_numpy(correct), n_bins)
    edges = np.linspace(0, 1, n_bins + 1, dtype=np.float32)
    for b in range(n_bins):
        in_bin = (conf > edges[b]) & (conf <= edges[b + 1])
        if b == 0:
            in_bin |= conf == 0
        assert sums.count[b] == in_bin.sum()
        np.testing.assert_allclose(
            float(sums.conf_sum[b]), conf[in_bin].astype(np.float64).sum(), rtol=1e-12
        )
        assert sums.acc_sum[b] == correct[in_bin].sum()


def test_equal_mass_edges_match_numpy_interp() -> None:
    from focalcal.metrics.binning import equal_mass_edges

    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 100, 1001):
        v = rng.random(n).astype(np.float32)
        expected = np.interp(np.linspace(0, n, 16), np.arange(n), np.sort(v))
        got = equal_mass_edges(torch.from_numpy(v), 15).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
