r"""The fused kernel of every focal-type loss (focal, FLSD, dual focal, inverse focal, AdaFocal).

All of them are, per item,

.. math:: \ell = -b^{\gamma}\log p_y,\qquad
          b = \begin{cases} 1 - p_y + p_j & \text{focal / dual focal } (p_j = 0 \text{ for focal})\\
          1 + p_y & \text{inverse focal}\end{cases}

with γ a constant or a per-item value computed from detached probabilities. One
``autograd.Function`` computes the items from the logits and writes the logit gradient by hand:

.. math:: \frac{\partial \ell}{\partial z} = g_y (e_y - p) + g_j (e_j - p),\quad
          g_y = \frac{\partial \ell}{\partial \log p_y},\ g_j = \frac{\partial \ell}{\partial \log p_j}

computed as ``log_softmax``'s own backward applied to the two-entry-per-row tensor
:math:`g_y e_y + g_j e_j` (the same two kernels as cross-entropy's backward), instead of
autograd's chain through gather, masking, max and log_softmax. The per-row derivatives are closed
forms computed in forward, and the reduction (torch semantics, ``_reduce``) is folded in, so the
only (N, C) work beyond cross-entropy's is the runner-up search of dual focal loss. First-order
only (a second derivative raises). Checked with float64 ``gradcheck`` and against plain autograd
references in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["GammaFn", "focal_family_loss", "runner_up_of"]

#: ``gamma_fn(p_y, p_j) -> (gamma, inverse)``: γ ≥ 0 (float or tensor shaped like ``p_y``) and
#: whether the item uses the inverse-focal base ``1 + p_y`` (bool or bool tensor). Both inputs are
#: detached; ``p_j`` is None when the loss has no runner-up term.
GammaFn = Callable[[Tensor, Tensor | None], tuple[Tensor | float, Tensor | bool]]

# A finite stand-in for -inf when masking (sign arithmetic is much faster than where/masked_fill
# on CPU); exp(-1e30) == 0 in every float dtype.
_MASK = 1e30


def runner_up_of(log_p: Tensor, log_p_y: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`\log p_j = \max\{\log p_c : \log p_c < \log p_y\}` and its lowest index j (keepdim).

    Classes with :math:`\log p_c \ge \log p_y` (the target, ties with it, larger ones) are pushed
    down by ``1e30·(sign(log p_c − log p_y) + 1)``, exactly 0 for candidates, so the maximum is an
    exact log-probability; with no candidate it is ≈ −1e30 (:math:`p_j = 0`).

    The index comes from ``amax`` of ``score_c = (masked_c − log p_j)·S − c``, which is exactly
    ``−c`` on the maximum and below ``−C`` elsewhere: a candidate has :math:`p_c < p_y` so
    :math:`p_c < 1/2` and :math:`|\log p_c| > \log 2`, hence two distinct candidates differ by at
    least 2^-24 ≈ 6e-8 (float32) or 2^-53 ≈ 1.1e-16 (float64), and S = 1e15 / 1e24 lifts that
    above any class count up to 1e7.
    Elementwise sign/add and ``amax`` are several times faster than ``where``/``masked_fill`` and
    ``max(dim)``/``argmax`` on CPU.
    """
    log_p_j, index_j, _ = _runner_up(log_p, log_p_y)
    return log_p_j, index_j


def _runner_up(log_p: Tensor, log_p_y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`runner_up_of`, also returning its (N, C) scratch tensor for reuse."""
    num_classes = log_p.shape[1]
    masked = (log_p - log_p_y).sign_().add_(1.0)
    torch.add(log_p, masked, alpha=-_MASK, out=masked)
    log_p_j = masked.amax(dim=1, keepdim=True)
    shape = [1] * log_p.ndim
    shape[1] = num_classes
    neg_classes = torch.arange(0, -num_classes, -1, device=log_p.device, dtype=log_p.dtype)
    scale = 1e15 if log_p.dtype == torch.float32 else 1e24
    torch.add(neg_classes.view(shape), masked.sub_(log_p_j), alpha=scale, out=masked)
    # rows without a candidate score ties of −1e30 (any index works: their g_j is 0); clamp anyway
    index_j = masked.amax(dim=1, keepdim=True).neg_().clamp_(0, num_classes - 1).round_().long()
    return log_p_j, index_j, masked


#: Gradients with at least this many elements are written in place on CPU (see ``backward``).
_IN_PLACE_NUMEL = 1 << 20

_TINY: dict[torch.dtype, float] = {}


def _tiny(dtype: torch.dtype) -> float:
    tiny = _TINY.get(dtype)
    if tiny is None:
        tiny = _TINY[dtype] = torch.finfo(dtype).tiny
    return tiny


class _FocalFamily(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: Tensor,
        target: Tensor,
        item_weight: Tensor,
        reduction: str,
        gamma_fn: GammaFn,
        runner_up: bool,
    ) -> Tensor:
        log_p = torch.log_softmax(logits, dim=1)
        index = target.unsqueeze(1)
        log_p_y = log_p.gather(1, index)
        p_y = log_p_y.exp()
        base = torch.expm1(log_p_y).neg_()
        if runner_up:
            log_p_j, index_j, scratch = _runner_up(log_p, log_p_y)
            p_j = log_p_j.exp()
            base.add_(p_j)
        else:
            index_j = p_j = scratch = None
        gamma, inverse = gamma_fn(p_y, p_j)
        if inverse is True:
            base = 1.0 + p_y
        elif inverse is not False:
            base = torch.where(inverse, 1.0 + p_y, base)
        tiny = _tiny(base.dtype)
        base = base.clamp_min_(tiny)
        # the mean's 1/Σw (``_reduce.total_weight``) is folded into the item weights, so value and
        # gradient share one scaling and backward has no division
        scale = item_weight.unsqueeze(1)
        if reduction == "mean":
            scale = scale / item_weight.sum().clamp_min_(tiny)
        weighted_factor = base.pow(gamma).mul_(scale)  # w·b^γ
        # the items w·b^γ·log p_y (ℓ = −these); the reduction of ``_reduce.reduce_items``
        weighted = weighted_factor * log_p_y
        ctx.scratch = None
        if ctx.needs_input_grad[0]:
            # ℓ = −b^γ log p_y with ∂b/∂log p_y = −p_y (focal, dual) or +p_y (inverse) and
            # ∂b/∂log p_j = p_j:  ∂ℓ/∂log p_y = ±γ (p_y log p_y / b)·w b^γ − w b^γ,
            # ∂ℓ/∂log p_j = −γ (p_j/b)·(w b^γ log p_y). b is clamped > 0 and p_j ≤ b, so both
            # stay finite.
            if inverse is True:
                signed_gamma = -gamma
            elif inverse is False:
                signed_gamma = gamma
            else:
                signed_gamma = torch.where(inverse, -gamma, gamma)
            # p_y·log p_y / b is bounded (b ≥ 1 − p_y ≈ −log p_y as p_y → 1), unlike p_y / b
            slope = torch.mul(p_y, log_p_y).div_(base)
            if isinstance(signed_gamma, Tensor):
                d_y = torch.addcmul(
                    weighted_factor.neg(), slope.mul_(signed_gamma), weighted_factor
                )
            else:
                d_y = torch.addcmul(
                    weighted_factor.neg(), slope, weighted_factor, value=signed_gamma
                )
            d_j = None
            if runner_up:
                d_j = torch.div(p_j, base).mul_(weighted)
                d_j = d_j.mul_(gamma).neg_() if isinstance(gamma, Tensor) else d_j.mul_(-gamma)
                if isinstance(inverse, Tensor):
                    d_j.masked_fill_(inverse, 0.0)
            ctx.save_for_backward(log_p, index, d_y, index_j, d_j)
            # fresh (N, C) memory is costly on CPU (page faults): backward reuses this buffer
            ctx.scratch = scratch
        ctx.reduction = reduction
        if reduction == "none":
            return weighted.neg_().squeeze(1)
        return weighted.sum().neg_()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        log_p, index, d_y, index_j, d_j = ctx.saved_tensors
        if ctx.reduction == "none":
            grad_out = grad_out.unsqueeze(1)
        # G = g_y e_y + g_j e_j, then log_softmax's own backward gives G − p·ΣG (as CE does).
        # The scratch buffer of forward serves once (a second backward, with retain_graph, must
        # not overwrite the gradient the first one returned, which autograd may keep as .grad).
        sparse, ctx.scratch = ctx.scratch, None
        sparse = torch.zeros_like(log_p) if sparse is None else sparse.zero_()
        sparse.scatter_(1, index, d_y * grad_out)
        if d_j is not None:
            sparse.scatter_add_(1, index_j, d_j * grad_out)
        # Large CPU gradients are written in place (the kernel reads each element before writing
        # it): a fresh allocation that size is mapped anew and page-faults on first touch (8×21×
        # 128×128: 8% of the step). Smaller ones recycle heap memory, where the aliased ``out=``
        # path is the slower one (4096×100: 7%). Elsewhere (caching allocators) out of place, so
        # no aliasing assumption is made about kernels this project cannot test.
        if sparse.device.type == "cpu" and sparse.numel() >= _IN_PLACE_NUMEL:
            grad = torch._log_softmax_backward_data(sparse, log_p, 1, log_p.dtype, out=sparse)
        else:
            grad = torch._log_softmax_backward_data(sparse, log_p, 1, log_p.dtype)
        return grad, None, None, None, None, None


def focal_family_loss(
    logits: Tensor,
    target: Tensor,
    item_weight: Tensor,
    reduction: str,
    gamma_fn: GammaFn,
    *,
    runner_up: bool = False,
) -> Tensor:
    r"""Reduced focal-family loss :math:`-b^{\gamma}\log p_y` (see the module docstring).

    Args:
        logits: (N, C, d1, ...) float32/float64 logits.
        target: (N, d1, ...) int64 labels, all in range (ignored items already replaced).
        item_weight: (N, d1, ...) per-item weights (0 for ignored items), from ``prepare``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (torch semantics, see ``_reduce``).
        gamma_fn: maps detached ``(p_y, p_j)`` (shape (N, 1, d1, ...)) to ``(gamma, inverse)``.
        runner_up: include :math:`p_j`, the largest probability strictly below :math:`p_y` (dual
            focal). Ties with :math:`p_y` are excluded; among tied candidates the gradient goes to
            the lowest class index, as ``topk`` does on CPU in the official code.

    Returns:
        A scalar, or (N, d1, ...) for ``"none"``; differentiable w.r.t. ``logits`` (first order).
    """
    return _FocalFamily.apply(logits, target, item_weight, reduction, gamma_fn, runner_up)
