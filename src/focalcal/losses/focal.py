r"""Focal loss (fixed γ, FLSD-53/52, scheduled FLSc, Lambert-W γ) and inverse focal loss.

References:
    Lin et al., *Focal Loss for Dense Object Detection*, ICCV 2017.
    Mukhoti et al., *Calibrating Deep Neural Networks using Focal Loss*, NeurIPS 2020.
    Wang et al., *Rethinking Calibration of Deep Neural Networks: Do Not Be Afraid of
    Overconfidence*, NeurIPS 2021 (inverse focal loss).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from focalcal.losses._kernel import focal_family_loss
from focalcal.losses._reduce import check_inputs, compute_in_fp32
from focalcal.losses._soft import soft_focal_family_loss, uses_soft_path
from focalcal.losses.gamma import GammaLoss, GammaPolicy, gamma_functions, get_gamma_policy

__all__ = ["FocalLoss", "InverseFocalLoss", "focal_loss", "inverse_focal_loss"]


@compute_in_fp32
def focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float | str | GammaPolicy = 3.0,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Focal loss :math:`\ell_i = -(1 - p_{i,y_i})^{\gamma_i} \log p_{i,y_i}`.

    .. math:: \ell_i = -(1 - p_{i,y_i})^{\gamma_i}\,\log p_{i,y_i},\qquad
              p_i = \mathrm{softmax}(z_i)

    :math:`\log p` comes from ``log_softmax`` and :math:`1-p` from ``-expm1(log p)``, so saturated
    logits (±1e4) give finite values and gradients. γ = 0 is exactly cross-entropy.

    Args:
        logits: (N, C) or (N, C, d1, ...) unnormalised scores; fp16/bf16 are computed in fp32.
        target: (N) or (N, d1, ...) integer class indices (or ``ignore_index``), or
            (N, C, d1, ...) floating class probabilities (soft targets, e.g. Mixup):
            :math:`-\sum_c q_c (1 - p_c)^{\gamma_c}\log p_c` (see :mod:`focalcal.losses._soft`).
        gamma: a number ≥ 0, a γ-policy name (``"flsd53"``, ``"flsd52"``, ``"flsd53_sst"``,
            ``"flsc531"``, ``"flsc532"``, ``"lambertw"``) or a
            :class:`~focalcal.losses.gamma.GammaPolicy`. Sample-dependent γ is computed from the
            detached :math:`p_y` (no gradient through γ).
        weight: optional (C,) class weights, as in :func:`torch.nn.functional.cross_entropy`.
        ignore_index: target value whose items contribute nothing (not to the mean's denominator
            either).
        reduction: ``"mean"`` (weighted mean: divided by the total weight of the counted items),
            ``"sum"`` (the official code's reduction) or ``"none"`` (shape of ``target``).
        validate: check finiteness and label range (one device sync); disable in hot loops.
        label_smoothing: ε in [0, 1], as in :func:`torch.nn.functional.cross_entropy`: the target
            becomes :math:`(1 - \varepsilon) q + \varepsilon / C` (at γ = 0 this is exactly
            ``F.cross_entropy(..., label_smoothing=ε)``). Soft targets and smoothing take the eager
            path (not the fused CPU kernel).

    Returns:
        A scalar, or the per-item losses (shape of ``target``) for ``reduction="none"``.

    Reference:
        Lin et al., ICCV 2017; Mukhoti et al., NeurIPS 2020 (FLSD-53: γ = 5 if p_y < 0.2,
        else 3).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> loss = focal_loss(logits, torch.tensor([0]), gamma=2.0, reduction="sum")
        >>> round(loss.item(), 6)
        0.045678
        >>> loss.backward()
    """
    gamma_fn, gamma_table = gamma_functions(get_gamma_policy(gamma))
    if uses_soft_path(target, label_smoothing):
        return soft_focal_family_loss(
            logits, target, gamma_fn, weight=weight, ignore_index=ignore_index,
            reduction=reduction, label_smoothing=label_smoothing, validate=validate,
        )  # fmt: skip
    logits, target, weight = check_inputs(logits, target, weight, ignore_index, reduction, validate)
    return focal_family_loss(
        logits, target, weight, ignore_index, reduction, gamma_fn, gamma_table=gamma_table
    )


@compute_in_fp32
def inverse_focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float | str | GammaPolicy = 2.0,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Inverse focal loss :math:`\ell_i = -(1 + p_{i,y_i})^{\gamma}\log p_{i,y_i}`.

    .. math:: \ell_i = -(1 + p_{i,y_i})^{\gamma_i}\,\log p_{i,y_i}

    Up-weights confident samples (the opposite of focal loss); it is also the negative-γ branch of
    official AdaFocal. Arguments and shapes as :func:`focal_loss` (soft targets and
    ``label_smoothing`` included); γ ≥ 0. Neither paper's code
    states the γ of its inverse-focal baseline; the default 2 is a common choice.

    :math:`(1 + p)^{\gamma}` reaches :math:`2^{\gamma}`, which overflows float32 (the compute
    dtype of fp16/bf16/fp32 logits) for γ ≥ 128 and float64 for γ ≥ 1024: a larger γ is a
    ValueError rather than an infinite loss.

    Reference:
        Wang et al., NeurIPS 2021.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> inverse_focal_loss(logits, torch.tensor([0]), gamma=1.0).backward()
    """
    policy = get_gamma_policy(gamma)
    gamma_fn, gamma_table = gamma_functions(policy, inverse=True)
    if uses_soft_path(target, label_smoothing):
        if isinstance(logits, Tensor):
            _check_inverse_gamma(policy, logits.dtype)
        return soft_focal_family_loss(
            logits, target, gamma_fn, weight=weight, ignore_index=ignore_index,
            reduction=reduction, label_smoothing=label_smoothing, validate=validate,
        )  # fmt: skip
    logits, target, weight = check_inputs(logits, target, weight, ignore_index, reduction, validate)
    _check_inverse_gamma(policy, logits.dtype)
    return focal_family_loss(
        logits, target, weight, ignore_index, reduction, gamma_fn, gamma_table=gamma_table
    )


def _check_inverse_gamma(policy: GammaPolicy, dtype: torch.dtype) -> None:
    r"""γ below the exponent at which :math:`2^{\gamma}`, the largest :math:`(1 + p)^{\gamma}`,
    overflows ``dtype``."""
    limit = math.log2(torch.finfo(dtype).max)
    if policy.max_gamma >= limit:
        remedy = " (or pass float64 logits, which allow gamma < 1024)" if limit < 1024 else ""
        raise ValueError(
            f"gamma: expected gamma < {limit:.0f} for inverse focal loss with {dtype} logits, "
            f"where (1 + p)^gamma overflows beyond that, got {policy!r}; use a smaller "
            f"gamma{remedy}"
        )


class FocalLoss(GammaLoss):
    r"""Focal loss module, :math:`-(1 - p_y)^{\gamma}\log p_y`; see :func:`focal_loss`.

    ``FocalLoss(3.0)`` (the default γ) is FL-3, ``FocalLoss("flsd53")`` is FLSD-53,
    ``FocalLoss("flsc531")`` the scheduled FLSc-531 (call ``set_epoch`` each epoch). Arguments:
    ``gamma`` and keyword-only ``weight``, ``ignore_index``, ``reduction``, ``validate``.

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...).
        - output: scalar, or the shape of ``target`` with ``reduction="none"``.

    Example:
        >>> import torch
        >>> criterion = FocalLoss(gamma="flsd53")
        >>> logits = torch.randn(8, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (8,))).backward()
    """

    default_gamma = 3.0

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(
            logits, target, self.gamma, label_smoothing=self.label_smoothing, **self._common()
        )


class InverseFocalLoss(GammaLoss):
    r"""Inverse focal loss module, :math:`-(1 + p_y)^{\gamma}\log p_y`; see :func:`inverse_focal_loss`.

    Default γ = 2.

    Example:
        >>> import torch
        >>> criterion = InverseFocalLoss(gamma=2.0)
        >>> logits = torch.randn(4, 3, requires_grad=True)
        >>> criterion(logits, torch.tensor([0, 1, 2, 0])).backward()
    """

    default_gamma = 2.0

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return inverse_focal_loss(
            logits, target, self.gamma, label_smoothing=self.label_smoothing, **self._common()
        )
