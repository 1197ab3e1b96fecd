r"""Calibration-aware losses: focal (FL, FLSD-53/52, FLSc), dual focal (DFL, DFL-SD), AdaFocal,
AdaDualFocal, Brier, MMCE, label smoothing, inverse focal and cross-entropy.

Every loss is a functional (``focal_loss(logits, target, ...)``) and an ``nn.Module``
(``FocalLoss(...)``) that mirrors :class:`torch.nn.CrossEntropyLoss`: logits (N, C) or
(N, C, d1, ...), integer targets, ``weight``, ``ignore_index=-100``,
``reduction="mean"|"sum"|"none"``, plus ``validate=True``. :func:`get_loss` builds a module by
name.

Example:
    >>> import torch
    >>> from focalcal.losses import get_loss
    >>> criterion = get_loss("dual_focal", gamma=5.0)
    >>> logits = torch.randn(8, 10, requires_grad=True)
    >>> criterion(logits, torch.randint(0, 10, (8,))).backward()
"""

from __future__ import annotations

from typing import Any

from torch import nn

from focalcal._registry import Registry
from focalcal.losses._fused import get_cpu_kernel, set_cpu_kernel
from focalcal.losses.adafocal import (
    AdaDualFocalLoss,
    AdaFocalLoss,
    adafocal_gamma_update,
    calibration_gaps,
)
from focalcal.losses.brier import BrierLoss, brier_loss
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
from focalcal.losses.mmce import MMCELoss, mmce_loss

__all__ = [
    "AdaDualFocalLoss",
    "AdaFocalLoss",
    "BrierLoss",
    "CrossEntropyLoss",
    "DualFocalLoss",
    "FixedGamma",
    "FocalLoss",
    "GammaPolicy",
    "InverseFocalLoss",
    "LabelSmoothingLoss",
    "LambertWGamma",
    "MMCELoss",
    "ScheduledGamma",
    "ThresholdGamma",
    "adafocal_gamma_update",
    "brier_loss",
    "calibration_gaps",
    "cross_entropy",
    "dual_focal_loss",
    "focal_loss",
    "get_cpu_kernel",
    "get_gamma_policy",
    "get_loss",
    "inverse_focal_loss",
    "label_smoothing_loss",
    "loss_names",
    "losses",
    "mmce_loss",
    "set_cpu_kernel",
]

losses: Registry[nn.Module] = Registry("loss")
losses.register("ce", "cross_entropy")(CrossEntropyLoss)
losses.register("focal", "fl", "focal_loss")(FocalLoss)
losses.register("flsd53", "flsd_53")(lambda **kw: FocalLoss(**{"gamma": "flsd53", **kw}))
losses.register("flsd52", "flsd_52")(lambda **kw: FocalLoss(**{"gamma": "flsd52", **kw}))
losses.register("flsc531", "flsc_531")(lambda **kw: FocalLoss(**{"gamma": "flsc531", **kw}))
losses.register("flsc532", "flsc_532")(lambda **kw: FocalLoss(**{"gamma": "flsc532", **kw}))
losses.register("dual_focal", "dfl", "dual_focal_loss")(DualFocalLoss)
losses.register("dual_flsd53", "dfl_sd", "dual_flsd_53")(
    lambda **kw: DualFocalLoss(**{"gamma": "flsd53", **kw})
)
losses.register("adafocal", "ada_focal")(AdaFocalLoss)
losses.register("ada_dual_focal", "adadualfocal")(AdaDualFocalLoss)
losses.register("brier")(BrierLoss)
losses.register("mmce")(lambda **kw: MMCELoss(**{"weighted": False, **kw}))
losses.register("mmce_weighted", "mmce_w")(lambda **kw: MMCELoss(**{"weighted": True, **kw}))
losses.register("label_smoothing", "ls")(LabelSmoothingLoss)
losses.register("inverse_focal")(InverseFocalLoss)


def get_loss(name: str, /, **kwargs: Any) -> nn.Module:
    """Build a loss module by name.

    Names: ``ce, focal, flsd53, flsd52, flsc531, flsc532, dual_focal, dual_flsd53, adafocal,
    ada_dual_focal, brier, mmce, mmce_weighted, label_smoothing, inverse_focal`` (and aliases such
    as ``dfl``, ``fl``, ``cross_entropy``). ``kwargs`` go to the module (``gamma``, ``weight``,
    ``ignore_index``, ``reduction``, ``validate``, ...). Unknown names raise ValueError listing the
    valid ones.

    Example:
        >>> get_loss("flsd53", reduction="sum")
        FocalLoss(gamma=ThresholdGamma(thresholds=(0.2, 0.5), gammas=(5.0, 3.0), default=3), reduction='sum')
    """
    return losses.get(name, **kwargs)


def loss_names() -> list[str]:
    """Every name :func:`get_loss` accepts (aliases included), sorted."""
    return losses.names()


# -- recent train-time calibration losses: MbLS, MDCA, ACLS, BSCE-GRA ---------------------------
from focalcal.losses.acls import ACLSLoss, acls_loss  # noqa: E402
from focalcal.losses.bsce_gra import BSCEGRALoss, bsce_gra_loss  # noqa: E402
from focalcal.losses.mbls import MbLSLoss, mbls_loss  # noqa: E402
from focalcal.losses.mdca import MDCALoss, mdca_loss  # noqa: E402

__all__ += [
    "ACLSLoss",
    "BSCEGRALoss",
    "MDCALoss",
    "MbLSLoss",
    "acls_loss",
    "bsce_gra_loss",
    "mbls_loss",
    "mdca_loss",
]
losses.register("mbls", "margin_label_smoothing", "logit_margin")(MbLSLoss)
losses.register("mdca", "nll_mdca")(MDCALoss)
losses.register("fl_mdca", "focal_mdca")(lambda **kw: MDCALoss(**{"base": "focal", **kw}))
losses.register("ls_mdca")(lambda **kw: MDCALoss(**{"base": "label_smoothing", **kw}))
losses.register("acls")(ACLSLoss)
losses.register("bsce_gra", "bscegra")(BSCEGRALoss)
losses.register("bsce")(lambda **kw: BSCEGRALoss(**{"detach": False, **kw}))


# ---- sigmoid (binary / multi-label) focal loss ---------------------------------------------------
from focalcal.losses.sigmoid import SigmoidFocalLoss, sigmoid_focal_loss  # noqa: E402

__all__ += ["SigmoidFocalLoss", "sigmoid_focal_loss"]
