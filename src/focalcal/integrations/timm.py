"""focalcal losses in timm's training recipe: Mixup / CutMix soft targets and ``--smoothing``.

timm's ``train.py`` picks its training loss from the recipe: with Mixup or CutMix active the
targets are probabilities (``SoftTargetCrossEntropy``; the smoothing is already in Mixup's
targets), else with ``--smoothing`` it is ``LabelSmoothingCrossEntropy(smoothing)``, else
cross-entropy. :func:`create_train_loss` makes the same choice for any focalcal loss: every
focal-type loss, cross-entropy and Brier take Mixup's (N, C) targets directly (see
:mod:`focalcal.losses._soft`), and ``--smoothing`` becomes the loss's ``label_smoothing`` (timm's
smoothing is torch's convention). At γ = 0 the focal loss is exactly timm's loss in both cases.

Example:
    >>> import torch
    >>> from timm.data import Mixup
    >>> mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=10)
    >>> criterion = create_train_loss("flsd53", mixup=True)
    >>> images, targets = mixup(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    >>> criterion(torch.randn(4, 10, requires_grad=True), targets).backward()
"""

from __future__ import annotations

from typing import Any

from torch import nn

from focalcal._optional import require
from focalcal.losses import MMCELoss, get_loss
from focalcal.losses._soft import check_label_smoothing

timm = require("timm", "timm")

__all__ = ["create_train_loss", "mixup_active", "train_loss_from_args"]


def mixup_active(args: Any) -> bool:
    """timm ``train.py``'s rule: ``args.mixup > 0 or args.cutmix > 0 or args.cutmix_minmax``."""
    return (
        getattr(args, "mixup", 0.0) > 0
        or getattr(args, "cutmix", 0.0) > 0
        or getattr(args, "cutmix_minmax", None) is not None
    )


def create_train_loss(
    name: str = "focal", *, mixup: bool = False, smoothing: float = 0.0, **loss_kwargs: Any
) -> nn.Module:
    """The training loss of a timm recipe, with focalcal's loss ``name``.

    Args:
        name: a :func:`focalcal.losses.get_loss` name (``"focal"``, ``"flsd53"``,
            ``"dual_focal"``, ``"adafocal"``, ``"ce"``, ``"brier"``, ...).
        mixup: Mixup / CutMix is active, so the targets are probabilities that already carry the
            smoothing (``smoothing`` is then ignored, as in timm).
        smoothing: timm's ``--smoothing`` for hard targets: the loss's ``label_smoothing``
            (``"ce"`` becomes label smoothing in torch's convention).
        loss_kwargs: passed to the loss (``gamma``, ``weight``, ...).

    Raises:
        ValueError: a loss without a soft-target form with ``mixup``, or without label
            smoothing with ``smoothing > 0``.
    """
    smoothing = 0.0 if mixup else check_label_smoothing(smoothing)
    if smoothing > 0 and name in ("ce", "cross_entropy"):
        return get_loss("label_smoothing", eps=smoothing, convention="torch", **loss_kwargs)
    loss = get_loss(name, **loss_kwargs)
    if mixup and isinstance(loss, MMCELoss):
        raise ValueError(
            f"name: {name!r} has no soft-target form, so it cannot train on Mixup / CutMix "
            f"targets; use a focal-type loss, 'ce' or 'brier'"
        )
    if smoothing > 0:
        if not hasattr(loss, "label_smoothing"):
            raise ValueError(
                f"smoothing: the {name!r} loss has no label_smoothing; use a focal-type loss or "
                f"'ce', or smoothing=0"
            )
        loss.label_smoothing = smoothing
    return loss


def train_loss_from_args(args: Any, name: str = "focal", **loss_kwargs: Any) -> nn.Module:
    """:func:`create_train_loss` from timm ``train.py``'s parsed arguments.

    Reads ``mixup``, ``cutmix``, ``cutmix_minmax`` and ``smoothing``; ``--jsd-loss`` and
    ``--bce-loss`` select losses of their own in timm and raise here.
    """
    for flag, alternative in (("jsd_loss", "AugMix's JSD"), ("bce_loss", "binary cross-entropy")):
        if getattr(args, flag, False):
            raise ValueError(
                f"args.{flag}: timm then trains with {alternative}, which focalcal does not "
                f"replace; unset it (for sigmoid heads see focalcal.losses.SigmoidFocalLoss)"
            )
    return create_train_loss(
        name,
        mixup=mixup_active(args),
        smoothing=getattr(args, "smoothing", 0.0) or 0.0,
        **loss_kwargs,
    )
