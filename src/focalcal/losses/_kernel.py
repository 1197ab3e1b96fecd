r"""The fused kernel of every focal-type loss (focal, FLSD, dual focal, inverse focal, AdaFocal).

All of them are, per item,

.. math:: \ell = -w_y\,b^{\gamma}\log p_y,\qquad
          b = \begin{cases} 1 - p_y + p_j & \text{focal / dual focal } (p_j = 0 \text{ for focal})\\
          1 + p_y & \text{inverse focal}\end{cases}

with γ a constant or a per-item value computed from detached probabilities. One
``autograd.Function`` computes the items from the logits and writes the logit gradient by hand:

.. math:: \frac{\partial \ell}{\partial z} = g_y (e_y - p) + g_j (e_j - p),\quad
          g_y = \frac{\partial \ell}{\partial \log p_y},\ g_j = \frac{\partial \ell}{\partial \log p_j}

computed as ``log_softmax``'s own backward applied to the two-entry-per-row tensor
:math:`g_y e_y + g_j e_j` (the same two kernels as cross-entropy's backward), instead of
autograd's chain through gather, masking, max and log_softmax. The per-item derivatives are
closed forms computed in forward, and the reduction (torch semantics, ``_reduce``) is folded in,
so the only (N, C) work beyond cross-entropy's is the runner-up search of dual focal loss; the
rest is a few per-item operations, whose fixed cost per call dominates small batches on CPU.
The two CPU kernels differ only in how they get the per-item statistics (log p_y, log p_j:
``_eager_statistics``, ``_fused_statistics``) and in their backward; the per-item algebra
(``_item_algebra``) is shared, and ``_FocalFamily.forward`` chooses the kernel (the one call of
:func:`~focalcal.losses._fused.fused_kernel_for`). Second derivatives are exact: when the backward itself is differentiated (``create_graph=True``,
e.g. a gradient penalty) the gradient is recomputed from the saved logits by the batched
definition :func:`focalcal.losses.reference.focal_family_items` under autograd, with γ detached
as in forward. Checked with float64 ``gradcheck``/``gradgradcheck`` and against the per-row
definitions of :mod:`focalcal.losses.reference` in the tests.

On CPU, ``set_cpu_kernel("fused")`` (:mod:`focalcal.losses._fused`) hands the same computation
to a C++ kernel (``_fused_cpu.cpp``): per-item statistics (log p_y, the runner-up p_j and its
class, the log-sum-exp) in two read passes over the logits without any (N, C) tensor, and the
gradient in one pass. When γ is a step function of p_y or of the margin (:class:`GammaTable`:
fixed, scheduled and thresholds-table γ, AdaFocal's bins, i.e. every focal-type loss but the
Lambert-W γ) the per-item algebra and the reduction run in the kernel too; otherwise the per-item
algebra runs here on the kernel's statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from focalcal.losses._fused import fused_kernel_for
from focalcal.losses._reduce import item_weights, reduce_items, total_weight
from focalcal.losses.reference import focal_family_items

__all__ = ["GammaFn", "GammaTable", "GammaTableFn", "focal_family_loss"]

#: ``gamma_fn(p_y, p_j) -> (gamma, inverse)``: γ ≥ 0 (float or tensor shaped like ``p_y``) and
#: whether the item uses the inverse-focal base ``1 + p_y`` (bool or bool tensor). Both inputs are
#: detached; ``p_j`` is None when the loss has no runner-up term.
GammaFn = Callable[[Tensor, Tensor | None], tuple[Tensor | float, Tensor | bool]]

_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}


class GammaTable(NamedTuple):
    r"""``gamma_fn`` as a step function, which the fused CPU kernel evaluates itself.

    γ is ``default``, replaced in turn by the γ of every ``(threshold, γ)`` step (largest threshold
    first) whose threshold the reference probability is below: :math:`p_y`, or the margin
    :math:`p_y - p_j` with ``margin``. ``inverse`` selects the base :math:`1 + p_y` for every
    item; ``signed`` makes items whose γ is negative inverse focal with :math:`|\gamma|` (official
    AdaFocal). Must give the same γ as ``gamma_fn`` (see :meth:`GammaPolicy.steps` and
    :meth:`AdaFocalLoss.gamma_table`).
    """

    steps: tuple[tuple[float, float], ...]
    default: float
    margin: bool = False
    inverse: bool = False
    signed: bool = False


#: ``gamma_table(dtype)``: ``gamma_fn`` as a :class:`GammaTable` for logits of ``dtype``, or None
#: when it is not a step function. Called only when the fused CPU kernel runs.
GammaTableFn = Callable[[torch.dtype], GammaTable | None]


class _Consts:
    """Per-dtype constants of the kernel and its runner-up search (see :func:`_runner_up_value`)."""

    def __init__(self, dtype: torch.dtype) -> None:
        info = torch.finfo(dtype)
        self.tiny = info.tiny
        # float32: 2^40 lifts the smallest gap between a non-candidate and the threshold
        # (2^-25, see _runner_up_value) to 2^15, below every log-probability whose exp is non-zero
        # (> −104); float64: 2^-54·2^70 = 2^16 (exp underflows below −745)
        self.mask_scale = 2.0**40 if dtype != torch.float64 else 2.0**70
        self.index_scale = 2.0**50 if dtype != torch.float64 else 2.0**80
        self.threshold_floor = -1e20 if dtype != torch.float64 else -1e200
        # x + x·(3/4)·ulp(1) rounds to the float just below x for negative normal x (see
        # _next_below); 2^-23 is ulp(1) in float32, 2^-52 in float64
        self.next_below = 0.75 * (2.0**-23 if dtype != torch.float64 else 2.0**-52)


_CONSTS: dict[torch.dtype, _Consts] = {}


def _consts(dtype: torch.dtype) -> _Consts:
    consts = _CONSTS.get(dtype)
    if consts is None:
        consts = _CONSTS[dtype] = _Consts(dtype)
    return consts


def _runner_up_value(log_p: Tensor, log_p_y: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`\log p_j` (keepdim) and the masked (N, C) tensor m, whose maximum it is.

    Candidates are the classes with :math:`\log p_c \le t`, where t is the float just below
    :math:`\log p_y` (:func:`_next_below`), so ties with :math:`p_y` are excluded exactly. With
    :math:`B = 2^{40}` (float32; :math:`2^{70}` float64), the masked value is

    .. math:: m_c = \min\bigl(\log p_c,\ B t - B \log p_c\bigr)

    which is exactly :math:`\log p_c` for a candidate (the second term is ≥ 0, scaling by a power
    of two is exact and rounding keeps the sign) and at most :math:`-B\,\mathrm{ulp}(t)` for the
    others. When :math:`\log p_y > -0.3` the ulp could be tiny, so t is lowered by
    :math:`4(\log p_y + 0.3)`: candidates then have :math:`p_c < 1 - p_y < 0.26` and lie more than
    0.3 below t, while the others sit at least 0.2 above it; otherwise ulp(t) ≥ 2^-25 (2^-54).
    Either way the others land below −2^15, where :math:`e^{m}` is 0, so a maximum that is not a
    candidate only happens when every candidate has :math:`p_c = 0` as well. Two elementwise
    passes and an ``amax`` (``where``/``masked_fill``/comparisons are several times slower on CPU).

    The index comes from ``amax`` of :math:`(m_c - \log p_j) S - c` (:math:`S = 2^{50}`, float64
    :math:`2^{80}`), exactly :math:`-j` at the maximum and below :math:`-C` elsewhere: two
    distinct candidates have :math:`p_c < 1/2`, so :math:`|\log p_c| > \log 2` and they differ by
    at least 2^-24 (2^-53), which S lifts above any class count below 6e7.
    """
    consts = _consts(log_p.dtype)
    threshold = _next_below(log_p_y)
    lift = torch.add(log_p_y, 0.3).clamp_min_(0.0)
    threshold.sub_(lift, alpha=4.0).clamp_min_(consts.threshold_floor)
    big = consts.mask_scale
    masked = torch.add(threshold.mul_(big), log_p, alpha=-big)
    torch.minimum(log_p, masked, out=masked)
    return masked.amax(dim=1, keepdim=True), masked


def _next_below(x: Tensor) -> Tensor:
    r"""``nextafter(x, -inf)`` for negative normal x, with one ``add``.

    For :math:`|x| \in [2^e, 2^{e+1})` the step :math:`\delta = \tfrac34 |x|\,2^{-23}` (float32;
    :math:`2^{-52}` float64) lies in :math:`[\tfrac34, \tfrac32)` ulp(x), so :math:`x - \delta`
    rounds to :math:`x - \mathrm{ulp}(x)`, the next float towards −∞ (also across a binade
    boundary). Used instead of ``torch.nextafter``, which was wrong for negative input on MPS in
    torch 2.2–2.3 (pytorch#124985). Zero and subnormal x are left (almost) unchanged; the caller
    only relies on x ≤ −0.3.
    """
    return torch.add(x, x, alpha=_consts(x.dtype).next_below)


def _runner_up_index(masked: Tensor, log_p_j: Tensor) -> Tensor:
    """The lowest index of ``log_p_j`` in ``masked`` (keepdim), overwriting ``masked``; see
    :func:`_runner_up_value`."""
    num_classes = masked.shape[1]
    shape = [1] * masked.ndim
    shape[1] = num_classes
    neg_classes = torch.arange(0, -num_classes, -1, device=masked.device, dtype=masked.dtype)
    masked.sub_(log_p_j.clamp_min(torch.finfo(masked.dtype).min))
    scale = _consts(masked.dtype).index_scale
    torch.add(neg_classes.view(shape), masked, alpha=scale, out=masked)
    # rows whose every entry is -inf (no candidate, saturated logits) give inf or nan: their
    # p_j is 0 and any index in range serves
    index_j = masked.amax(dim=1, keepdim=True).neg_().nan_to_num_(0.0).clamp_(0, num_classes - 1)
    return index_j.long()


#: Gradients with at least this many elements are written in place on CPU (see ``backward``).
_IN_PLACE_NUMEL = 1 << 20


#: Gradients with at least this many elements are written in place on CPU (see ``_eager_backward``).
_IN_PLACE_NUMEL = 1 << 20


class _Statistics(NamedTuple):
    """What a kernel computes per item before the shared algebra, and what its backward keeps.

    ``log_p_y``, ``log_p_j``: (N, 1, d1, ...), ``log_p_j`` None without a runner-up term.
    ``index_j``: the runner-up's class, if the kernel found it already (the fused one does).
    ``scratch``: an (N, C, ...) buffer the eager backward may reuse. ``saved``: the kernel's own
    tensors for its backward.
    """

    log_p_y: Tensor
    log_p_j: Tensor | None
    index_j: Tensor | None
    scratch: Tensor | None
    saved: tuple[Tensor, ...]


def _eager_statistics(logits: Tensor, index: Tensor, runner_up: bool) -> _Statistics:
    """Statistics by torch operations: ``log_softmax``, a gather and the runner-up search."""
    log_p = torch.log_softmax(logits, dim=1)
    log_p_y = log_p.gather(1, index)
    log_p_j = scratch = None
    if runner_up:
        log_p_j, scratch = _runner_up_value(log_p, log_p_y)
    return _Statistics(log_p_y, log_p_j, None, scratch, (log_p, index))


def _flat_inputs(logits: Tensor, target: Tensor, weight: Tensor | None) -> tuple[Tensor, ...]:
    """The fused kernel's view of the inputs: logits (N, C, S), targets (N, S), weights (C,) or
    empty; no (N, C) copy is made for contiguous logits."""
    num_items, num_classes = logits.shape[:2]
    flat_logits = logits.reshape(num_items, num_classes, -1).contiguous()
    flat_target = target.reshape(num_items, -1).contiguous()
    kernel_weight = logits.new_empty(0) if weight is None else weight.contiguous()
    return flat_logits, flat_target, kernel_weight


def _fused_statistics(
    fused: Any,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    runner_up: bool,
    need_grad: bool,
) -> _Statistics:
    """Statistics by the fused CPU kernel, in two read passes and without any (N, C) tensor."""
    flat_logits, flat_target, kernel_weight = _flat_inputs(logits, target, weight)
    log_p_y, log_p_j, index_j, shift, log_sum, _ = fused.stats(
        flat_logits, flat_target, kernel_weight, ignore_index, runner_up, runner_up and need_grad
    )
    shape = (logits.shape[0], 1, *logits.shape[2:])
    return _Statistics(
        log_p_y.view(shape),
        log_p_j.view(shape) if runner_up else None,
        index_j if runner_up else None,
        None,
        (flat_logits, flat_target, shift, log_sum),
    )


def _item_algebra(
    log_p_y: Tensor,
    log_p_j: Tensor | None,
    item_weight: Tensor,
    gamma_fn: GammaFn,
    reduction: str,
    need_grad: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    r"""The reduced value of :math:`-w b^\gamma \log p_y` and the per-item derivatives
    ``(d_y, d_j)`` = :math:`(\partial\ell/\partial\log p_y, \partial\ell/\partial\log p_j)`
    (None without ``need_grad``; ``d_j`` None without a runner-up), the reduction folded in."""
    p_y = log_p_y.exp()
    base = torch.expm1(log_p_y).neg_()
    p_j = None
    if log_p_j is not None:
        p_j = log_p_j.exp()
        base.add_(p_j)
    gamma, inverse = gamma_fn(p_y, p_j)
    if inverse is True:
        base = 1.0 + p_y
    elif inverse is not False:
        base = torch.where(inverse, 1.0 + p_y, base)
    base = base.clamp_min_(_consts(log_p_y.dtype).tiny)
    # −w b^γ (0 for ignored items), the loss's coefficient of log p_y
    neg_factor = base.pow(gamma).mul_(item_weight)
    if reduction == "mean":
        # the mean's 1/Σw folded in, so value and gradient share it (a batch of ignored
        # items has mean 0, not NaN; w b^γ/Σw stays finite: b ≤ 2 and w ≤ Σw)
        neg_factor.div_(total_weight(item_weight, log_p_y.dtype).neg_())
    else:
        neg_factor.neg_()
    if reduction == "none":
        value = torch.mul(neg_factor, log_p_y).squeeze(1)
    else:
        value = torch.dot(neg_factor.view(-1), log_p_y.view(-1))
    if not need_grad:
        return value, None, None
    return (value, *_item_derivatives(log_p_y, p_y, p_j, base, gamma, inverse, neg_factor))


def _item_derivatives(
    log_p_y: Tensor,
    p_y: Tensor,
    p_j: Tensor | None,
    base: Tensor,
    gamma: Tensor | float,
    inverse: Tensor | bool,
    neg_factor: Tensor,
) -> tuple[Tensor, Tensor | None]:
    r"""``(d_y, d_j)`` of :math:`\ell = -w b^\gamma \log p_y`, from its forward quantities.

    With :math:`\partial b/\partial\log p_y = -p_y` (focal, dual) or :math:`+p_y` (inverse) and
    :math:`\partial b/\partial\log p_j = p_j`:
    :math:`d_y = \pm\gamma\,(p_y\log p_y/b)\,w b^\gamma - w b^\gamma` and
    :math:`d_j = -\gamma\,(p_j/b)\,w b^\gamma\log p_y`. b is clamped > 0,
    :math:`p_y\log p_y/b` is bounded (:math:`b \ge 1 - p_y \approx -\log p_y` as
    :math:`p_y \to 1`) and :math:`p_j \le b`, so both stay finite.
    """
    if inverse is True:
        signed_gamma: Tensor | float = -gamma
    elif inverse is False:
        signed_gamma = gamma
    else:
        signed_gamma = torch.where(inverse, -gamma, gamma)
    slope = torch.mul(p_y, log_p_y).div_(base)
    if isinstance(signed_gamma, Tensor):
        slope.mul_(signed_gamma)
        signed_gamma = 1.0
    d_y = torch.addcmul(neg_factor, slope, neg_factor, value=-signed_gamma)
    if p_j is None:
        return d_y, None
    d_j = torch.div(p_j, base).mul_(neg_factor).mul_(log_p_y).mul_(gamma)
    if isinstance(inverse, Tensor):
        d_j.masked_fill_(inverse, 0.0)
    return d_y, d_j


def _fused_loss(
    fused: Any,
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    table: GammaTable,
    runner_up: bool,
    need_grad: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, tuple[Tensor, ...]]:
    """The whole loss in the fused CPU kernel (γ from a table): the value, ``d_y``, ``d_j``,
    the runner-up's class and the kernel's backward state."""
    flat_logits, flat_target, kernel_weight = _flat_inputs(logits, target, weight)
    value, d_y, d_j, index_j, shift, log_sum = fused.loss(
        flat_logits,
        flat_target,
        kernel_weight,
        ignore_index,
        runner_up,
        need_grad,
        [threshold for threshold, _ in table.steps],
        [gamma for _, gamma in table.steps],
        table.default,
        table.margin,
        table.inverse,
        table.signed,
        _REDUCTION_CODES[reduction],
    )
    if not runner_up:
        d_j = index_j = None
    if reduction == "none":
        value = value.view(logits.shape[:1] + logits.shape[2:])
    return value, d_y, d_j, index_j, (flat_logits, flat_target, shift, log_sum)


def _eager_backward(ctx: Any, grad_out: Tensor) -> Tensor:
    """The logit gradient by ``log_softmax``'s own backward (as cross-entropy's)."""
    _, _, _, d_y, d_j, index_j, log_p, index = ctx.saved_tensors
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
    # it): a fresh allocation that size is mapped anew and page-faults on first touch. Smaller
    # ones recycle heap memory, where the aliased ``out=`` path is the slower one. Elsewhere
    # (caching allocators) out of place, so no aliasing assumption is made about kernels this
    # project cannot test.
    if sparse.device.type == "cpu" and sparse.numel() >= _IN_PLACE_NUMEL:
        return torch._log_softmax_backward_data(sparse, log_p, 1, log_p.dtype, out=sparse)
    return torch._log_softmax_backward_data(sparse, log_p, 1, log_p.dtype)


def _fused_backward(ctx: Any, grad_out: Tensor) -> Tensor:
    """The logit gradient from the fused CPU kernel, in one pass (see ``_fused_cpu.cpp``)."""
    _, _, _, d_y, d_j, index_j, flat_logits, flat_target, shift, log_sum = ctx.saved_tensors
    if d_j is None:
        d_j = d_y.new_empty(0)
        index_j = flat_target.new_empty(0)
    grad = ctx.fused.backward(
        flat_logits,
        flat_target,
        ctx.ignore_index,
        shift,
        log_sum,
        d_y.contiguous(),
        index_j,
        d_j,
        grad_out.contiguous(),
    )
    return grad.view(ctx.logits_shape)


def _differentiable_backward(ctx: Any, grad_out: Tensor) -> Tensor:
    """The logit gradient as a differentiable function of the logits (``create_graph=True``):
    autograd through :func:`~focalcal.losses.reference.focal_family_items`, so that
    derivatives of the gradient are exact."""
    logits, target, weight = ctx.saved_tensors[:3]
    index, _, item_weight = item_weights(
        target.unsqueeze(1), weight, ctx.ignore_index, logits.dtype
    )
    with torch.enable_grad():
        items = focal_family_items(logits, index, ctx.gamma_fn, runner_up=ctx.runner_up)
        value = reduce_items((items * item_weight).squeeze(1), item_weight, ctx.reduction)
        (grad,) = torch.autograd.grad(value, logits, grad_out, create_graph=True)
    return grad


class _FocalFamily(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        logits: Tensor,
        target: Tensor,
        weight: Tensor | None,
        ignore_index: int,
        reduction: str,
        gamma_fn: GammaFn,
        runner_up: bool,
        gamma_table: GammaTableFn | None,
    ) -> Tensor:
        need_grad = ctx.needs_input_grad[0]
        fused = fused_kernel_for(logits)  # the one place where the kernel is chosen
        ctx.fused, ctx.logits_shape, ctx.scratch = fused, logits.shape, None
        ctx.reduction, ctx.ignore_index = reduction, ignore_index
        ctx.gamma_fn, ctx.runner_up = gamma_fn, runner_up
        table = None if fused is None or gamma_table is None else gamma_table(logits.dtype)
        if table is not None:
            value, d_y, d_j, index_j, saved = _fused_loss(
                fused, logits, target, weight, ignore_index, reduction, table, runner_up, need_grad
            )
        else:
            # ignored items gather class 0 and weigh 0, which zeroes their value and gradient
            index, _, item_weight = item_weights(target.unsqueeze(1), weight, ignore_index)
            if fused is None:
                stats = _eager_statistics(logits, index, runner_up)
            else:
                stats = _fused_statistics(
                    fused, logits, target, weight, ignore_index, runner_up, need_grad
                )
            value, d_y, d_j = _item_algebra(
                stats.log_p_y, stats.log_p_j, item_weight, gamma_fn, reduction, need_grad
            )
            index_j, saved = stats.index_j, stats.saved
            if d_j is not None and index_j is None:  # the eager search: only for the gradient
                index_j = _runner_up_index(stats.scratch, stats.log_p_j)
            # fresh (N, C) memory is costly on CPU (page faults): backward reuses this buffer
            ctx.scratch = stats.scratch if need_grad else None
        if need_grad:
            ctx.save_for_backward(logits, target, weight, d_y, d_j, index_j, *saved)
        return value

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        if torch.is_grad_enabled():  # the backward is itself differentiated
            grad = _differentiable_backward(ctx, grad_out)
        elif ctx.fused is not None:
            grad = _fused_backward(ctx, grad_out)
        else:
            grad = _eager_backward(ctx, grad_out)
        return grad, None, None, None, None, None, None, None


def focal_family_loss(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    gamma_fn: GammaFn,
    *,
    runner_up: bool = False,
    gamma_table: GammaTableFn | None = None,
) -> Tensor:
    r"""Reduced focal-family loss :math:`-w_y b^{\gamma}\log p_y` (see the module docstring).

    Args:
        logits: (N, C, d1, ...) float32/float64 logits.
        target: (N, d1, ...) int64 labels in range or equal to ``ignore_index``.
        weight: (C,) class weights in the logits' dtype, or None.
        ignore_index: items with this target contribute nothing (not to the mean's total either).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (torch semantics, see ``_reduce``).
        gamma_fn: maps detached ``(p_y, p_j)`` (shape (N, 1, d1, ...)) to ``(gamma, inverse)``.
        runner_up: include :math:`p_j`, the largest probability strictly below :math:`p_y` (dual
            focal). Ties with :math:`p_y` are excluded; among tied candidates the gradient goes to
            the lowest class index, as ``topk`` does on CPU in the official code (the fused
            CPU kernel: to the largest logit among them, then the lowest index; second
            derivatives: the lowest index).
        gamma_table: builds ``gamma_fn`` as a step function for a dtype, if it is one; only
            called when the fused CPU kernel runs, which then computes the whole loss itself
            (otherwise only the per-item statistics).

    Returns:
        A scalar, or (N, d1, ...) for ``"none"``; differentiable w.r.t. ``logits`` to any order
        (γ and the choice of :math:`p_j` carry no gradient).
    """
    return _FocalFamily.apply(
        logits, target, weight, ignore_index, reduction, gamma_fn, runner_up, gamma_table
    )
