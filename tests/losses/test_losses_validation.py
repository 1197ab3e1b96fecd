"""Bad input raises ValueError/TypeError naming the argument, the expected and the received value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from focalcal.losses import (
    AdaFocalLoss,
    FocalLoss,
    dual_focal_loss,
    focal_loss,
    get_loss,
    label_smoothing_loss,
    loss_names,
    mmce_loss,
)
from loss_contract import CONTRACT_LOSSES

X = torch.randn(4, 3)
T = torch.tensor([0, 1, 2, 0])

CASES = [
    (lambda: focal_loss(torch.randn(3), T), ValueError, r"logits: expected shape \(N, C\)"),
    (lambda: focal_loss(X, torch.tensor([0, 1])), ValueError, r"target: expected shape \(4,\)"),
    (lambda: focal_loss(X, T.float()), TypeError, "target: expected integer class indices"),
    (lambda: focal_loss(X, torch.tensor([0, 1, 3, 0])), ValueError, r"target: .*\[0, 3\).*3"),
    (
        lambda: focal_loss(torch.tensor([[0.0, np.nan]]), torch.tensor([0])),
        ValueError,
        "logits: expected finite",
    ),
    (
        lambda: dual_focal_loss(torch.tensor([[0.0, np.inf]]), torch.tensor([0])),
        ValueError,
        "logits: expected finite",
    ),
    (lambda: focal_loss(X, T, -1.0), ValueError, "gamma: expected gamma >= 0"),
    (lambda: dual_focal_loss(X, T, -0.5), ValueError, "gamma: expected gamma >= 0"),
    (
        lambda: focal_loss(X, T, "flsd54"),
        ValueError,
        "unknown gamma policy 'flsd54'; expected one of",
    ),
    (lambda: focal_loss(X, T, [1.0]), TypeError, "gamma: expected a number"),
    (
        lambda: focal_loss(X, T, reduction="avg"),
        ValueError,
        r"reduction: expected one of \['mean', 'sum', 'none'\], got 'avg'",
    ),
    (lambda: FocalLoss(reduction="avg"), ValueError, "reduction: expected one of"),
    (lambda: focal_loss(X, T, weight=torch.ones(4)), ValueError, r"weight: expected shape \(3,\)"),
    (
        lambda: focal_loss(X, T, weight=torch.tensor([1.0, -1.0, 1.0])),
        ValueError,
        "weight: expected non-negative",
    ),
    (
        lambda: focal_loss(X, T, weight=[1.0, 1.0, 1.0]),
        TypeError,
        "weight: expected a 1-D float tensor",
    ),
    (lambda: focal_loss(X.numpy(), T), TypeError, "logits: expected a torch.Tensor"),
    (lambda: focal_loss(T.view(4, 1), T), TypeError, "logits: expected a floating-point tensor"),
    (
        lambda: focal_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
        ValueError,
        "logits: expected a non-empty batch",
    ),
    (lambda: FocalLoss(ignore_index=1.5), TypeError, "ignore_index: expected an int"),
    (
        lambda: label_smoothing_loss(X, T, 1.5),
        ValueError,
        r"eps: expected a number in \[0, 1\], got 1.5",
    ),
    (lambda: label_smoothing_loss(X, T, 0.9), ValueError, "eps: expected eps <= "),
    (
        lambda: label_smoothing_loss(X, T, convention="tf"),
        ValueError,
        "convention: expected one of",
    ),
    (
        lambda: mmce_loss(X, T, kernel_width=1e-5),
        ValueError,
        "kernel_width: expected a width >= 0.001",
    ),
    (lambda: mmce_loss(X, T, lam=-1.0), ValueError, "lam: expected a finite number >= 0"),
    (lambda: AdaFocalLoss(variant="x"), ValueError, "variant: expected one of"),
    (lambda: AdaFocalLoss(n_bins=0), ValueError, "n_bins: expected an integer >= 1"),
    (lambda: AdaFocalLoss(gamma_init=float("nan")), ValueError, "gamma_init: expected a finite"),
    (lambda: AdaFocalLoss(gamma_min="-2"), TypeError, "gamma_min: expected a real number"),
    (
        lambda: AdaFocalLoss(gamma_min=30.0),
        ValueError,
        "gamma_min: expected a finite number <= gamma_max",
    ),
    (
        lambda: AdaFocalLoss().update(torch.randn(10, 3), torch.zeros(10, dtype=torch.long)),
        ValueError,
        "val_probs: .*from_logits=True",
    ),
    (
        lambda: AdaFocalLoss().update(torch.full((10, 3), 1 / 3), torch.zeros(9, dtype=torch.long)),
        ValueError,
        r"val_labels: expected shape \(10,\)",
    ),
    (
        lambda: AdaFocalLoss().set_bins([0.0, 0.5, 1.0], [1.0]),
        ValueError,
        "edges, gammas: expected shapes",
    ),
    (
        lambda: get_loss("focall"),
        ValueError,
        "unknown loss 'focall'; expected one of: .*dual_focal",
    ),
    (lambda: get_loss(3), TypeError, "loss name: expected a string"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), CASES)
def test_bad_input_raises_with_a_clear_message(call, error, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call()


def test_every_loss_validates_its_inputs() -> None:
    for name in loss_names():
        loss = get_loss(name)
        with pytest.raises(ValueError, match="target: expected class indices"):
            loss(X, torch.tensor([0, 1, 5, 0]))
        with pytest.raises(ValueError, match="logits: expected finite"):
            loss(torch.tensor([[0.0, np.nan, 1.0]]), torch.tensor([0]))
        with pytest.raises(TypeError, match="target: expected integer"):
            loss(X, T.float())


def test_validate_false_skips_only_the_value_checks() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    # shape and dtype checks still run
    with pytest.raises(ValueError, match="target: expected shape"):
        focal_loss(logits, torch.tensor([0, 1]), validate=False)
    # value checks (one device sync each) are skipped: an ignored label far out of range is fine,
    # and a valid call gives the same value
    torch.testing.assert_close(
        focal_loss(logits, torch.tensor([2]), validate=False), focal_loss(logits, torch.tensor([2]))
    )
    focal_loss(logits, torch.tensor([-100]), validate=False)


def test_unknown_name_lists_every_contract_name() -> None:
    with pytest.raises(ValueError) as err:
        get_loss("nope")
    for name in CONTRACT_LOSSES:
        assert name in str(err.value)
        assert isinstance(get_loss(name), torch.nn.Module)
