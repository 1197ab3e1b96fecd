"""Every registered name of Dual Focal Loss gets the DFL paper's γ table (and no other loss does)."""

from __future__ import annotations

import pytest

from focalcal.losses import losses as LOSSES
from focalcal.training.config import default_gamma, make_config

#: Tao et al. (2023), the authors' validation-tuned γ per (dataset, model), typed in from the
#: DFL-ICML README (not read from focalcal).
PAPER_GAMMA = {
    ("cifar10", "resnet50"): 5.0,
    ("cifar10", "resnet110"): 4.5,
    ("cifar10", "wide_resnet26_10"): 2.6,
    ("cifar10", "densenet121"): 5.0,
    ("cifar100", "resnet50"): 5.0,
    ("cifar100", "resnet110"): 6.1,
    ("cifar100", "wide_resnet26_10"): 3.9,
    ("cifar100", "densenet121"): 3.4,
    ("tiny_imagenet", "resnet50"): 2.3,
}

DUAL_FOCAL_NAMES = [n for n in LOSSES.names() if LOSSES.factory(n) is LOSSES.factory("dual_focal")]
OTHER_NAMES = [n for n in LOSSES.names() if n not in DUAL_FOCAL_NAMES]


def test_dual_focal_has_aliases() -> None:
    # the test below is only meaningful if the registry does hold aliases of the loss
    assert "dual_focal" in DUAL_FOCAL_NAMES and len(DUAL_FOCAL_NAMES) >= 3


@pytest.mark.parametrize("name", DUAL_FOCAL_NAMES)
def test_every_dual_focal_alias_gets_the_paper_table(name: str) -> None:
    for spelling in (name, name.upper(), name.replace("_", "-")):
        for (dataset, model), gamma in PAPER_GAMMA.items():
            assert default_gamma(spelling, dataset, model) == gamma, (spelling, dataset, model)
            assert make_config(dataset, model, spelling).gamma == gamma
    assert default_gamma(name, "svhn", "resnet50") is None  # not in the table


@pytest.mark.parametrize("name", OTHER_NAMES)
def test_other_losses_get_no_table_gamma(name: str) -> None:
    assert default_gamma(name, "cifar100", "resnet110") is None


def test_unknown_loss_gets_no_gamma() -> None:
    assert default_gamma("not_a_loss", "cifar100", "resnet110") is None
