"""Parity with the official implementations (../shared/refvectors/vectors.npz).

Every loss case (random N×C, hand-made, ties, saturated ±1000 logits, gt smallest/largest,
N×C×H×W) is compared, value and gradient, with ``reduction="sum"`` (the official reduction; Brier
and MMCE: their own). float32 keys at rtol 1e-4, ``_f64`` keys at rtol 1e-6.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch

from focalcal.losses import (
    AdaDualFocalLoss,
    AdaFocalLoss,
    BrierLoss,
    CrossEntropyLoss,
    DualFocalLoss,
    FocalLoss,
    LabelSmoothingLoss,
    MMCELoss,
    adafocal_gamma_update,
)
from focalcal.losses.mmce import mmce_penalty

ADA_EDGES = [0.0, 0.3, 0.55, 0.8, 0.95, 1.0]


def _ada(variant: str, gammas: list[float], dual: bool = False) -> AdaFocalLoss:
    loss = (
        AdaDualFocalLoss(reduction="sum")
        if dual
        else AdaFocalLoss(variant=variant, reduction="sum")
    )
    loss.set_bins(ADA_EDGES, gammas)
    return loss


def _penalty(weighted: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = torch.ones_like(target, dtype=torch.bool)
        log_p = torch.log_softmax(logits, dim=1)
        return mmce_penalty(log_p, target, valid, weighted=weighted, convention="official")

    return fn


# official key -> our loss (official reduction)
LOSSES: dict[str, Callable[[], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "fc_ce_sum": lambda: CrossEntropyLoss(reduction="sum"),
    "dfl_ce_sum": lambda: CrossEntropyLoss(reduction="sum"),
    "fc_fl_g0": lambda: FocalLoss(0.0, reduction="sum"),
    "fc_fl_g1": lambda: FocalLoss(1.0, reduction="sum"),
    "fc_fl_g2": lambda: FocalLoss(2.0, reduction="sum"),
    "fc_fl_g3": lambda: FocalLoss(3.0, reduction="sum"),
    "dfl_fl_g3": lambda: FocalLoss(3.0, reduction="sum"),
    "fc_flsd53": lambda: FocalLoss("flsd53", reduction="sum"),
    "fc_flsd52": lambda: FocalLoss("flsd52", reduction="sum"),
    "dfl_flsd53": lambda: FocalLoss("flsd53", reduction="sum"),
    "dfl_dfl_g1": lambda: DualFocalLoss(1.0, reduction="sum"),
    "dfl_dfl_g2": lambda: DualFocalLoss(2.0, reduction="sum"),
    "dfl_dfl_g3": lambda: DualFocalLoss(3.0, reduction="sum"),
    "dfl_dfl_g5": lambda: DualFocalLoss(5.0, reduction="sum"),
    "dfl_dflsd53": lambda: DualFocalLoss("flsd53", reduction="sum"),
    "fc_brier": lambda: BrierLoss(reduction="mean"),
    "fc_ls005_sum": lambda: LabelSmoothingLoss(0.05, "paper", reduction="sum"),
    "fc_mmce_raw": lambda: _penalty(weighted=False),
    "fc_mmce_w_raw": lambda: _penalty(weighted=True),
    "fc_mmce_lam2": lambda: MMCELoss(2.0, weighted=False),
    "fc_mmce_w_lam2": lambda: MMCELoss(2.0, weighted=True, convention="official"),
    "dfl_adafocal_bins": lambda: _ada("dfl_repo", [6, 4, 2.5, 1.5, 0.7]),
    "dfl_adadualfocal_bins": lambda: _ada("dfl_repo", [6, 4, 2.5, 1.5, 0.7], dual=True),
    "ada_adafocal_signed": lambda: _ada("official", [6, 2, 0.2, -0.2, -1.5]),
    "ada_adafocal_init": lambda: AdaFocalLoss(reduction="sum"),
}


def _cases(refvectors: dict[str, np.ndarray]) -> list[str]:
    return json.loads(str(refvectors["meta_json"]))["loss_cases"]


def _run(loss_key: str, logits: np.ndarray, targets: np.ndarray, dtype: torch.dtype):
    x = torch.tensor(logits, dtype=dtype, requires_grad=True)
    value = LOSSES[loss_key]()(x, torch.tensor(targets))
    value.backward()
    return value.item(), x.grad.numpy()


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("loss_key", sorted(LOSSES))
def test_loss_matches_official_values_and_gradients(refvectors, loss_key: str) -> None:
    checked = 0
    for case in _cases(refvectors):
        prefix = f"loss__{case}__{loss_key}__"
        if prefix + "value" not in refvectors:
            continue
        logits = refvectors[f"loss__{case}__logits"]
        targets = refvectors[f"loss__{case}__targets"]
        expected = float(refvectors[prefix + "value"])
        if np.isnan(expected):  # the official code raised here (see errors_json)
            continue
        value, grad = _run(loss_key, logits, targets, torch.float32)
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-6, err_msg=f"{case} value")
        np.testing.assert_allclose(
            grad, refvectors[prefix + "grad"], rtol=1e-4, atol=1e-6, err_msg=f"{case} grad"
        )
        if prefix + "value_f64" in refvectors:
            value64, grad64 = _run(loss_key, logits, targets, torch.float64)
            np.testing.assert_allclose(value64, float(refvectors[prefix + "value_f64"]), rtol=1e-6)
            if prefix + "grad_f64" in refvectors:
                # atol: 1e-8 of the largest entry (cancellation in near-zero entries: the MMCE
                # kernel sums are accumulated in a different order); the official label
                # smoothing builds its targets in float32 even for float64 logits, so its
                # q_c = ε/(C−1) is off by up to ε·2^-24 ≈ 3e-9.
                ref64 = refvectors[prefix + "grad_f64"]
                atol = max(3e-9 if "ls005" in loss_key else 0.0, 1e-8 * np.abs(ref64).max())
                np.testing.assert_allclose(grad64, ref64, rtol=1e-6, atol=atol)
        checked += 1
    assert checked >= 10, f"only {checked} cases found for {loss_key}"


def test_official_crashes_are_defined_values_here(refvectors) -> None:
    """Where the official code raised (MMCE_w with N = 1, LS on N×C×H×W), we return a value."""
    errors = json.loads(str(refvectors["errors_json"]))
    assert "loss__rand_N1_C10__fc_mmce_w_raw" in errors
    logits = torch.tensor(refvectors["loss__rand_N1_C10__logits"], requires_grad=True)
    target = torch.tensor(refvectors["loss__rand_N1_C10__targets"])
    # one sample is either correct or wrong: MMCE_w is 0 and the loss is plain CE
    value = MMCELoss(2.0, weighted=True, convention="official")(logits, target)
    np.testing.assert_allclose(
        value.item(), torch.nn.functional.cross_entropy(logits, target).item(), rtol=1e-6
    )
    assert "loss__nchw_2x5x3x4__fc_ls005_sum" in errors
    x = torch.tensor(refvectors["loss__nchw_2x5x3x4__logits"])
    t = torch.tensor(refvectors["loss__nchw_2x5x3x4__targets"])
    flat_x, flat_t = x.movedim(1, -1).reshape(-1, x.shape[1]), t.reshape(-1)
    ls = LabelSmoothingLoss(0.05, reduction="sum")
    np.testing.assert_allclose(ls(x, t).item(), ls(flat_x, flat_t).item(), rtol=1e-6)


def test_adafocal_update_rule_matches_official(refvectors) -> None:
    gamma = torch.tensor(refvectors["adafocal_update__gamma_before"], dtype=torch.float64)
    gap = torch.tensor(refvectors["adafocal_update__calibration_gap"], dtype=torch.float64)
    after = adafocal_gamma_update(
        gamma, gap, lam=1.0, switch_threshold=0.2, gamma_min=-2, gamma_max=20
    )
    np.testing.assert_allclose(after.numpy(), refvectors["adafocal_update__gamma_after"], rtol=1e-6)


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize(
    ("target", "gamma", "expected"),
    [
        # values printed by the official code for logits [2, 1, 0]
        (0, 2.0, 0.136876439),
        (1, 2.0, 1.005784634),  # p_j = p_3 = 0.0900 (the predicted class is skipped)
        (2, 2.0, 1.993604535),  # gt smallest: DFL = FL
        (0, 5.0, 0.02663550586),
    ],
)
def test_dfl_hand_vectors(target: int, gamma: float, expected: float) -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    value = DualFocalLoss(gamma, reduction="sum")(logits, torch.tensor([target]))
    np.testing.assert_allclose(value.item(), expected, rtol=1e-8)


@pytest.mark.usefixtures("cpu_kernel")
def test_official_adafocal_inverse_branch_hand_vector() -> None:
    """[3, 0, 0] with target 0 in a bin with γ = −0.2: −(1 + p)^0.2 log p = 0.108032 (official)."""
    loss = AdaFocalLoss(reduction="sum")
    loss.set_bins([0.0, 0.5, 1.0], [1.0, -0.2])
    value = loss(torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([0]))
    np.testing.assert_allclose(value.item(), 0.108032, rtol=1e-5)
