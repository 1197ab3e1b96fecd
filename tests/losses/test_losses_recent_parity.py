"""Parity of MbLS, MDCA, ACLS and BSCE-GRA with their official implementations
(../shared/refvectors/recent-losses.npz; skipped when absent).

Every case and every setting of the file: the value and the gradient from float32 logits, the
value from float64 logits, the float64 gradient where stored, and the regulariser alone (the
``parts`` of the official tuples). Official reductions: means for MbLS / MDCA / ACLS (MbLS with
``convention="official"``, its hinge averaged over N·C entries), sums for the BSCE family.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from focalcal.losses import ACLSLoss, BSCEGRALoss, MbLSLoss, MDCALoss
from focalcal.losses.acls import acls_penalty
from focalcal.losses.mbls import logit_margin_penalty
from focalcal.losses.mdca import mdca_penalty

SHARED = Path(os.environ.get("FOCALCAL_SHARED", Path(__file__).resolve().parents[3] / "shared"))
RECENT = SHARED / "refvectors" / "recent-losses.npz"

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@pytest.fixture(scope="module")
def recent() -> dict[str, Any]:
    """The official outputs, plus ``meta`` (the parsed ``meta_json``)."""
    if not RECENT.exists():
        pytest.skip(f"reference vectors not found at {RECENT}")
    with np.load(RECENT, allow_pickle=False) as d:
        data: dict[str, Any] = {k: d[k] for k in d.files}
    data["meta"] = json.loads(str(data["meta_json"]))
    return data


def _mbls(setting: dict[str, Any]) -> Loss:
    kwargs = dict(setting["kwargs"])
    loss = MbLSLoss(convention="official", **kwargs)
    epochs = setting.get("schedule_alpha_called_with_epochs", [])
    assert epochs == list(range(len(epochs)))  # the official calls, epoch by epoch
    loss.set_epoch(len(epochs))
    assert loss.alpha == pytest.approx(setting["alpha_used"], rel=1e-12)
    return loss


def _mdca(setting: dict[str, Any]) -> Loss:
    if "object" in setting:  # the MDCA term alone
        return lambda x, t: mdca_penalty(torch.softmax(x, 1), t, torch.ones_like(t, dtype=bool))
    r = setting["resolved"]
    base = {"CrossEntropyLoss": "ce", "FocalLoss": "focal", "LabelSmoothingLoss": "label_smoothing"}
    return MDCALoss(
        r["beta"], base=base[r["classification_loss"]], gamma=r["gamma"], eps=r["alpha"]
    )


def _acls(setting: dict[str, Any]) -> Loss:
    r = setting["resolved"]
    return ACLSLoss(r["alpha"], r["margin"], pos_lambda=r["pos_lambda"], neg_lambda=r["neg_lambda"])


def _bsce(detach: bool) -> Callable[[dict[str, Any]], Loss]:
    def build(setting: dict[str, Any]) -> Loss:
        r = setting["resolved"]
        return BSCEGRALoss(
            r["gamma"],
            r["norm"],
            temperature=setting.get("resolved_temperature", 1.0),
            detach=detach,
            reduction="mean" if r["size_average"] else "sum",
        )

    return build


BUILDERS: dict[str, Callable[[dict[str, Any]], Loss]] = {
    "mbls": _mbls,
    "mdca": _mdca,
    "acls": _acls,
    "bsce_gra": _bsce(detach=True),
    "temperature_bsce_gra": _bsce(detach=True),
    "bsce": _bsce(detach=False),
}

# (tag, setting) pairs, listed here so that a setting missing from the file fails loudly
SETTINGS = {
    "mbls": ["default", "margin2", "alpha0.5", "ignore_index0", "sched_add",
             "sched_multiply_capped", "sched_step"],
    "mdca": ["default", "beta5", "fl_gamma1", "fl_gamma3", "ls_alpha0.1", "ls_alpha0.3",
             "mdca_term"],
    "acls": ["default", "pos_lambda2", "neg_lambda0.5", "alpha0.3", "margin3"],
    "bsce_gra": ["default", "gamma1", "gamma3", "gamma1_norm2", "gamma1_mean", "gamma4_norm2"],
    "temperature_bsce_gra": ["default", "gamma1", "gamma1_T2", "gamma1_T0.5"],
    "bsce": ["default", "gamma1", "gamma4_norm2"],
}  # fmt: skip
PAIRS = [(tag, s) for tag, names in SETTINGS.items() for s in names]


def _run(loss: Loss, logits: np.ndarray, targets: np.ndarray, dtype: torch.dtype):
    x = torch.tensor(logits, dtype=dtype, requires_grad=True)
    value = loss(x, torch.tensor(targets))
    value.backward()
    return value.item(), x.grad.numpy()


@pytest.mark.parametrize(("tag", "setting"), PAIRS, ids=[f"{t}-{s}" for t, s in PAIRS])
def test_values_and_gradients_match_official(recent, tag: str, setting: str) -> None:
    meta = recent["meta"]
    assert sorted(meta["losses"][tag]["settings"]) == sorted(SETTINGS[tag])
    loss = BUILDERS[tag](meta["losses"][tag]["settings"][setting])
    errors = json.loads(str(recent["errors_json"]))
    checked = 0
    for case in meta["cases"]:
        logits = recent[f"{tag}__{case}__logits"]
        targets = recent[f"{tag}__{case}__targets"]
        key = f"{tag}__{case}__{setting}__"
        if any(k.startswith(key) for k in errors) or np.isnan(recent[key + "value"]):
            continue  # the official code raised or returned NaN (e.g. MbLS keeping <= 1 row)
        value, grad = _run(loss, logits, targets, torch.float32)
        np.testing.assert_allclose(value, recent[key + "value"], rtol=1e-5, err_msg=case)
        ref = recent[key + "grad"]
        np.testing.assert_allclose(grad, ref, rtol=0, atol=2e-5 * np.abs(ref).max(), err_msg=case)
        value64, grad64 = _run(loss, logits, targets, torch.float64)
        np.testing.assert_allclose(value64, recent[key + "value_f64"], rtol=1e-12, err_msg=case)
        if key + "grad_f64" in recent:
            ref64 = recent[key + "grad_f64"]
            np.testing.assert_allclose(
                grad64, ref64, rtol=0, atol=1e-13 * np.abs(ref64).max(), err_msg=case
            )
        checked += 1
    assert checked >= len(meta["cases"]) - 1, f"only {checked} cases compared"


def _official_regulariser(tag: str, setting: dict[str, Any], x: torch.Tensor, t: torch.Tensor):
    """The regulariser (third element of ``parts``) from our penalty functions."""
    if tag == "mbls":
        ignore = setting["ignore_index_used"]
        kept = x[t != ignore] if ignore >= 0 else x
        return logit_margin_penalty(kept, setting["margin_used"]).sum() / kept.numel()
    if tag == "acls":
        r = setting["resolved"]
        return acls_penalty(x, r["margin"], r["pos_lambda"], r["neg_lambda"]).mean()
    return mdca_penalty(torch.softmax(x, 1), t, torch.ones_like(t, dtype=torch.bool))


@pytest.mark.parametrize("tag", ["mbls", "mdca", "acls"])
def test_regularisers_match_the_official_parts(recent, tag: str) -> None:
    meta = recent["meta"]
    checked = 0
    for name, setting in meta["losses"][tag]["settings"].items():
        for case in meta["cases"]:
            key = f"{tag}__{case}__{name}__parts"
            if key not in recent:
                continue
            x = torch.tensor(recent[f"{tag}__{case}__logits"], dtype=torch.float64)
            t = torch.tensor(recent[f"{tag}__{case}__targets"])
            ours = _official_regulariser(tag, setting, x, t)
            np.testing.assert_allclose(ours.item(), recent[key][2], rtol=1e-6, atol=1e-7)
            checked += 1
    assert checked >= 5 * len(meta["cases"])


def test_mbls_paper_convention_is_the_official_hinge_times_c(recent) -> None:
    """The default sums the hinge over classes: α means the paper's α, not α / C."""
    case = "rand_n32_c100_s3"
    x = torch.tensor(recent[f"mbls__{case}__logits"], dtype=torch.float64)
    t = torch.tensor(recent[f"mbls__{case}__targets"])
    ce, hinge_mean = recent[f"mbls__{case}__margin2__parts"][1:]
    value = MbLSLoss(margin=2.0, alpha=0.1)(x, t).item()
    np.testing.assert_allclose(value, ce + 0.1 * hinge_mean * x.shape[1], rtol=1e-6)
