r"""Calibration-aware losses: focal (FL, FLSD-53/52, FLSc), dual focal (DFL, DFL-SD), AdaFocal,
AdaDualFocal, Brier, MMCE, label smoothing, inverse focal and cross-entropy, and the later
train-time baselines MbLS, MDCA, ACLS and BSCE-GRA.

Every loss is a functional (``focal_loss(logits, target, ...)``) and an ``nn.Module``
(``FocalLoss(...)``) that mirrors :class:`torch.nn.CrossEntropyLoss`: logits (N, C) or
(N, C, d1, ...), integer targets, ``weight``, ``ignore_index=-100``,
``reduction="mean"|"sum"|"none"``, plus ``validate=True``. :func:`get_loss` builds a module by
name (the registry :data:`LOSSES`). Derivatives of every order are exact, so gradient penalties
work; :mod:`focalcal.losses.reference` defines each focal-type loss on one row, as the
specification the batched kernels are tested against.

Example:
    >>> import torch
    >>> from focalcal.losses import get_loss
    >>> criterion = get_loss("dual_focal", gamma=5.0)
    >>> logits = torch.randn(8, 10, requires_grad=True)
    >>> target = torch.randint(0, 10, (8,))
    >>> criterion(logits, target).backward()

    A gradient penalty differentiates through the gradient:

    >>> loss = criterion(logits, target)
    >>> (grad,) = torch.autograd.grad(loss, logits, create_graph=True)
    >>> (loss + (grad**2).sum()).backward()
"""

from __future__ import annotations

from typing import Any

from torch import nn

from focalcal._registry import Registry
from focalcal.losses._fused import get_cpu_kernel, set_cpu_kernel
from focalcal.losses.acls import ACLSLoss, acls_loss
from focalcal.losses.adafocal import AdaDualFocalLoss, AdaFocalLoss, adafocal_gamma_update
from focalcal.losses.brier import BrierLoss, brier_loss
from focalcal.losses.bsce_gra import BSCEGRALoss, bsce_gra_loss
from focalcal.losses.dual_focal import DualFocalLoss, dual_focal_loss
from focalcal.losses.focal import FocalLoss, InverseFocalLoss, focal_loss, inverse_focal_loss
from focalcal.losses.gamma import (
    FixedGamma,
    GammaPolicy,
    LambertWGamma,
    ScheduledGamma,
    ThresholdGamma,
    get_gamma_policy,
)
from focalcal.losses.label_smoothing import (
    CrossEntropyLoss,
    LabelSmoothingLoss,
    cross_entropy,
    label_smoothing_loss,
)
from focalcal.losses.linear import LinearCalibrationLoss, linear_calibration_loss
from focalcal.losses.mbls import MbLSLoss, mbls_loss
from focalcal.losses.mdca import MDCALoss, mdca_loss
from focalcal.losses.mmce import MMCELoss, mmce_loss
from focalcal.losses.sigmoid import SigmoidFocalLoss, sigmoid_focal_loss

__all__ = [
    "LOSSES",
    "ACLSLoss",
    "AdaDualFocalLoss",
    "AdaFocalLoss",
    "BSCEGRALoss",
    "BrierLoss",
    "CrossEntropyLoss",
    "DualFocalLoss",
    "FixedGamma",
    "FocalLoss",
    "GammaPolicy",
    "InverseFocalLoss",
    "LabelSmoothingLoss",
    "LambertWGamma",
    "LinearCalibrationLoss",
    "MDCALoss",
    "MMCELoss",
    "MbLSLoss",
    "ScheduledGamma",
    "SigmoidFocalLoss",
    "ThresholdGamma",
    "acls_loss",
    "adafocal_gamma_update",
    "brier_loss",
    "bsce_gra_loss",
    "cross_entropy",
    "dual_focal_loss",
    "focal_loss",
    "get_cpu_kernel",
    "get_gamma_policy",
    "get_loss",
    "inverse_focal_loss",
    "label_smoothing_loss",
    "linear_calibration_loss",
    "loss_names",
    "mbls_loss",
    "mdca_loss",
    "mmce_loss",
    "set_cpu_kernel",
    "sigmoid_focal_loss",
]

#: Every loss module by name (aliases included); :func:`get_loss` builds from it.
LOSSES: Registry[nn.Module] = Registry("loss")
LOSSES.register("ce", "cross_entropy")(CrossEntropyLoss)
LOSSES.register("focal", "fl", "focal_loss")(FocalLoss)
LOSSES.register("flsd53", "flsd_53")(lambda **kw: FocalLoss(**{"gamma": "flsd53", **kw}))
LOSSES.register("flsd52", "flsd_52")(lambda **kw: FocalLoss(**{"gamma": "flsd52", **kw}))
LOSSES.register("flsc531", "flsc_531")(lambda **kw: FocalLoss(**{"gamma": "flsc531", **kw}))
LOSSES.register("flsc532", "flsc_532")(lambda **kw: FocalLoss(**{"gamma": "flsc532", **kw}))
LOSSES.register("dual_focal", "dfl", "dual_focal_loss")(DualFocalLoss)
LOSSES.register("dual_flsd53", "dfl_sd", "dual_flsd_53")(
    lambda **kw: DualFocalLoss(**{"gamma": "flsd53", **kw})
)
LOSSES.register("adafocal", "ada_focal")(AdaFocalLoss)
LOSSES.register("ada_dual_focal", "adadualfocal")(AdaDualFocalLoss)
LOSSES.register("brier")(BrierLoss)
LOSSES.register("mmce")(lambda **kw: MMCELoss(**{"weighted": False, **kw}))
LOSSES.register("mmce_weighted", "mmce_w")(lambda **kw: MMCELoss(**{"weighted": True, **kw}))
LOSSES.register("label_smoothing", "ls")(LabelSmoothingLoss)
LOSSES.register("inverse_focal")(InverseFocalLoss)
LOSSES.register("mbls", "margin_label_smoothing", "logit_margin")(MbLSLoss)
LOSSES.register("mdca", "nll_mdca")(MDCALoss)
LOSSES.register("fl_mdca", "focal_mdca")(lambda **kw: MDCALoss(**{"base": "focal", **kw}))
LOSSES.register("ls_mdca")(lambda **kw: MDCALoss(**{"base": "label_smoothing", **kw}))
LOSSES.register("acls")(ACLSLoss)
LOSSES.register("bsce_gra", "bscegra")(BSCEGRALoss)
LOSSES.register("bsce")(lambda **kw: BSCEGRALoss(**{"detach": False, **kw}))


def get_loss(name: str, /, **kwargs: Any) -> nn.Module:
    """Build a loss module by name.

    Names: ``ce, focal, flsd53, flsd52, flsc531, flsc532, dual_focal, dual_flsd53, adafocal,
    ada_dual_focal, brier, mmce, mmce_weighted, label_smoothing, inverse_focal, mbls, mdca,
    fl_mdca, ls_mdca, acls, bsce_gra, bsce`` (and aliases such as ``dfl``, ``fl``,
    ``cross_entropy``; :func:`loss_names` lists them all). ``kwargs`` go to the module (``gamma``, ``weight``,
    ``ignore_index``, ``reduction``, ``validate``, ...). Unknown names raise ValueError listing the
    valid ones.

    Example:
        >>> get_loss("flsd53", reduction="sum")
        FocalLoss(gamma=ThresholdGamma(thresholds=(0.2, 0.5), gammas=(5.0, 3.0), default=3), reduction='sum')
    """
    return LOSSES.get(name, **kwargs)


def loss_names() -> list[str]:
    """Every name :func:`get_loss` accepts (aliases included), sorted."""
    return LOSSES.names()
