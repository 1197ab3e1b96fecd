r"""The linear layer and a calibration loss fused in chunks of tokens (language-model scale).

A language model's loss is a loss of the logits :math:`z = h W^\top + b` of a vocabulary of V
classes for N tokens. Materialising them costs N·V floats, and their gradient as much again: 4 GB
each in fp32 for 8,192 tokens of a 128k vocabulary. :func:`linear_calibration_loss` never holds
them. It walks over chunks of tokens; for each chunk it computes the chunk's logits (full vocabulary
rows, so the log-sum-exp, :math:`p_y`, the runner-up :math:`p_j` of dual focal loss and γ are
exact), takes the loss value and its gradient :math:`g = \partial L/\partial z` from focalcal's own
loss functionals (the same kernels as :func:`~focalcal.losses.dual_focal_loss` and friends, so no
rule is written twice), and folds the gradient into the layer's:

.. math:: \frac{\partial L}{\partial h_c} = g_c W,\qquad
          \frac{\partial L}{\partial W} \mathrel{+}= g_c^\top h_c,\qquad
          \frac{\partial L}{\partial b} \mathrel{+}= \textstyle\sum_i g_{c,i}

all in the forward pass (as Liger-Kernel's fused linear cross-entropy does); backward only scales
the stored gradients by the incoming one. Peak memory is :math:`O(\text{chunk}\cdot V + N H + V H)`.

Dtypes: the two matmuls run in the input dtype (as the model's own ``lm_head`` does); the loss
statistics are computed in fp32 (the losses' own policy for fp16/bf16); the gradient of the
weight and of the bias and the loss value are accumulated in fp32 (float64 for float64 input) and
returned in the parameters' dtype; each row of the hidden states' gradient is written once, in the
input dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from focalcal._validation import _describe, check_choice, check_int, check_positive, check_targets
from focalcal.losses._reduce import (
    REDUCTIONS,
    WeightedLoss,
    compute_in_fp32,
    mean_denominator,
    prepare,
    reduce_items,
)

__all__ = ["LINEAR_LOSSES", "LinearCalibrationLoss", "dft_loss", "linear_calibration_loss"]

#: The per-token losses of :func:`focalcal.losses.get_loss` the fused form supports (their
#: aliases too), plus ``"dft"``. Batch-level losses (MMCE) and AdaFocal's validation-driven γ are
#: not per-token and are not fused.
LINEAR_LOSSES: tuple[str, ...] = (
    "ce", "focal", "flsd53", "flsd52", "flsc531", "flsc532", "dual_focal", "dual_flsd53",
    "inverse_focal", "label_smoothing", "brier", "dft",
)  # fmt: skip

#: The default chunk: ``H // 8`` tokens, at least 128, and at most ``2**24 // V`` (64 MiB of fp32
#: logits). Each chunk reads the weight twice and updates its gradient once, so chunks of fewer
#: than ~128 tokens are bound by that traffic (measured on CPU: 16-token chunks 5x slower than
#: 256-token ones); ``H // 8`` keeps a chunk's temporaries (about three (chunk, V) tensors) near
#: 3/8 of the weight's gradient (V, H), which any path holds.
CHUNK_TOKENS_PER_WIDTH = 8
CHUNK_MIN_TOKENS = 128
CHUNK_MAX_LOGITS = 1 << 24

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@compute_in_fp32
def dft_loss(
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Dynamic fine-tuning loss: cross-entropy weighted by the detached :math:`p_y`.

    .. math:: \ell_i = -\operatorname{sg}(p_{i,y_i})\,\log p_{i,y_i}

    Shapes and ``ignore_index`` / ``reduction`` as :func:`~focalcal.losses.cross_entropy`.

    Reference:
        Wu et al., *On the Generalization of SFT: A Reinforcement Learning Perspective with Reward
        Rectification*, 2025 (DFT).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> loss = dft_loss(logits, torch.tensor([0]))
        >>> round(loss.item(), 6)  # 0.665241 · 0.407606
        0.271156
        >>> loss.backward()
    """
    batch = prepare(logits, target, None, ignore_index, reduction, validate)
    log_p_y = torch.log_softmax(batch.logits, dim=1).gather(1, batch.target.unsqueeze(1))
    log_p_y = log_p_y.squeeze(1)
    items = -(log_p_y.detach().exp() * log_p_y) * batch.item_weight
    return reduce_items(items, batch.item_weight, reduction)


class _DFTLoss(WeightedLoss):
    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        common = self._common()
        del common["weight"]
        return dft_loss(logits, target, **common)


def _build_criterion(
    loss: str, reduction: str, ignore_index: int, options: dict[str, Any]
) -> nn.Module:
    """The per-chunk loss module: ``get_loss(loss, **options)`` with the chunk's reduction."""
    from focalcal.losses import LOSSES  # the package imports this module: import at call time

    if "weight" in options:
        raise TypeError(
            "weight: class weights are not supported by the fused linear loss (`weight` is the "
            "lm_head weight here); drop the option"
        )
    common = {"reduction": reduction, "ignore_index": ignore_index, "validate": False}
    if isinstance(loss, str) and loss.strip().lower() == "dft":
        if options:
            raise TypeError(f"loss 'dft' takes no options, got {sorted(options)}")
        return _DFTLoss(**common)
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {list(LINEAR_LOSSES)} (or an alias), got {loss!r}")
    factory = LOSSES.factory(loss)
    if factory not in {LOSSES.factory(name) for name in LINEAR_LOSSES if name != "dft"}:
        raise ValueError(
            f"loss: expected a per-token loss, one of {list(LINEAR_LOSSES)} (or an alias), "
            f"got {loss!r}, which needs batch-level statistics and cannot be fused"
        )
    return factory(**options, **common)


def _accumulation_dtype(weight: Tensor) -> torch.dtype:
    """float64 for float64 input, else float32: the dtype of the sums over chunks."""
    return torch.float64 if weight.dtype == torch.float64 else torch.float32


@dataclass
class _Plan:
    """What every chunk needs besides the tensors."""

    criterion: nn.Module
    chunk_size: int
    softcap: float | None


def _chunk_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """:math:`h W^\top + b` in the input dtype."""
    if bias is None:
        return hidden @ weight.T
    return torch.addmm(bias, hidden, weight.T)


def _chunk_loss(plan: _Plan, logits: Tensor, target: Tensor) -> Tensor:
    """The chunk's loss (summed, or per token) from its raw logits, soft-capped if asked."""
    if plan.softcap is not None:
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        logits = torch.tanh(logits / plan.softcap) * plan.softcap
    return plan.criterion(logits, target)


def _sweep(
    plan: _Plan,
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    target: Tensor,
    grad_scale: Tensor | None,
    needs: tuple[bool, bool, bool],
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """One pass over the chunks: the loss (summed or per token) and, where ``needs`` asks, the
    gradients of hidden, weight and bias for the loss weighted by ``grad_scale`` (a scalar, or
    one weight per token for the per-token loss)."""
    acc = _accumulation_dtype(weight)
    grad_h = (
        torch.empty(hidden.shape, dtype=hidden.dtype, device=hidden.device) if needs[0] else None
    )
    grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if needs[1] else None
    grad_b = None
    if bias is not None and needs[2]:
        grad_b = torch.zeros(bias.shape, dtype=acc, device=bias.device)
    values = []
    for start in range(0, hidden.shape[0], plan.chunk_size):
        rows = slice(start, start + plan.chunk_size)
        h, t = hidden[rows], target[rows]
        z = _chunk_logits(h, weight, bias)
        if grad_scale is None or not any(needs):
            with torch.no_grad():
                values.append(_chunk_loss(plan, z, t).to(acc))
            continue
        z = z.detach().requires_grad_()
        with torch.enable_grad():
            value = _chunk_loss(plan, z, t)
        scale = grad_scale if grad_scale.ndim == 0 else grad_scale[rows]
        (g,) = torch.autograd.grad(value, z, scale.to(value.dtype))
        values.append(value.detach().to(acc))
        del z, value
        if grad_h is not None:
            torch.mm(g, weight, out=grad_h[rows])
        if grad_w is not None:
            if g.dtype == acc:
                grad_w.addmm_(g.T, h)
            else:  # fp16/bf16: the chunk's product in the input dtype, summed in fp32
                grad_w.add_(g.T @ h)
        if grad_b is not None:
            grad_b.add_(g.sum(0, dtype=acc))
        del g  # before the next chunk's logits: one (chunk, V) tensor less at the peak
    value = torch.cat(values) if values[0].ndim else torch.stack(values).sum()
    return value, grad_h, grad_w, grad_b


class _LinearLoss(torch.autograd.Function):
    """Forward sweeps the chunks and keeps the gradients for backward (scalar loss), or only the
    values (per-token loss, whose backward sweeps again)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        target: Tensor,
        plan: _Plan,
        scale: Tensor | None,
    ) -> Tensor:
        ctx.plan, ctx.scale, ctx.grads = plan, scale, None
        ctx.needs = tuple(ctx.needs_input_grad[:3])
        ctx.save_for_backward(hidden, weight, bias, target)
        if scale is None:
            # per-token weights arrive in backward, and ∂L/∂W = Σ_i w_i g_iᵀ h_i does not factor:
            # backward sweeps the chunks again (twice the matmuls, the same memory)
            return _sweep(plan, hidden, weight, bias, target, None, ctx.needs)[0]
        value, *grads = _sweep(plan, hidden, weight, bias, target, scale, ctx.needs)
        ctx.grads = grads  # an attribute, not a saved tensor, so backward can hand it over
        return value * scale

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        hidden, weight, bias, target = ctx.saved_tensors
        grads, ctx.grads = ctx.grads, None
        if grads is None:  # per-token loss, or a second backward (retain_graph): sweep again
            weights = grad_out if ctx.scale is None else grad_out * ctx.scale
            _, *grads = _sweep(ctx.plan, hidden, weight, bias, target, weights, ctx.needs)
        elif bool(grad_out != 1):
            grads = [None if g is None else g * grad_out for g in grads]
        # else (loss.backward() sends 1) the forward's gradients are handed over with no other
        # reference left, so autograd keeps them as .grad without copying a (V, H) tensor
        dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        out = [None if g is None else g.to(d) for g, d in zip(grads, dtypes, strict=True)]
        return (*out, None, None, None)


def _check_layer(hidden: Any, weight: Any, bias: Any) -> None:
    """Types, dtypes and shapes of the hidden states, the head weight and its bias."""
    for name, value in (("hidden", hidden), ("weight", weight), ("bias", bias)):
        if value is None and name == "bias":
            continue
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {_describe(value)}")
        if value.dtype not in _DTYPES:
            raise TypeError(
                f"{name}: expected a float16, bfloat16, float32 or float64 tensor, got {value.dtype}"
            )
    if hidden.ndim not in (2, 3) or hidden.shape[-1] < 1:
        raise ValueError(f"hidden: expected shape (N, H) or (B, T, H), got {tuple(hidden.shape)}")
    if weight.ndim != 2 or weight.shape[1] != hidden.shape[-1] or weight.shape[0] < 1:
        raise ValueError(
            f"weight: expected shape (V, {hidden.shape[-1]}) (vocabulary × the hidden size "
            f"of hidden {tuple(hidden.shape)}), got {tuple(weight.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"bias: expected shape ({weight.shape[0]},) (one per row of weight), "
            f"got {tuple(bias.shape)}"
        )
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and (value.dtype != hidden.dtype or value.device != hidden.device):
            raise TypeError(
                f"{name}: expected the dtype and device of hidden ({hidden.dtype}, "
                f"{hidden.device}), got ({value.dtype}, {value.device}); cast it with "
                f".to(hidden) (the matmul runs in one dtype, the sums in fp32)"
            )


def _check_target(
    target: Any, hidden: Tensor, vocab: int, ignore_index: int, validate: bool
) -> Tensor:
    """Integer targets shaped like ``hidden`` without its last dim, in ``[0, V)`` or ignored."""
    tokens = tuple(hidden.shape[:-1])
    if isinstance(target, Tensor) and tuple(target.shape) != tokens:
        raise ValueError(
            f"target: expected shape {tokens} (one label per token of hidden "
            f"{tuple(hidden.shape)}), got {tuple(target.shape)}"
        )
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index: expected an int, got {ignore_index!r}")
    flat = check_targets(
        target.reshape(-1) if isinstance(target, Tensor) else target,
        (hidden[..., 0].numel(), vocab),
        vocab,
        "target",
        ignore_index=ignore_index,
        validate=validate,
    )
    if flat.device != hidden.device:
        raise ValueError(f"target: expected device {hidden.device}, got {flat.device}")
    return flat.long()


def _normaliser(
    num_items_in_batch: Any,
    reduction: str,
    flat_target: Tensor,
    ignore_index: int,
    acc: torch.dtype,
    validate: bool,
) -> Tensor | None:
    """The scale of the summed loss: 1 (sum), 1 / Σ counted tokens (mean), 1 / num_items_in_batch
    (Hugging Face's normalisation), or None for the per-token loss."""
    if num_items_in_batch is not None:
        if reduction != "mean":
            raise ValueError(
                f"num_items_in_batch: replaces the mean's denominator and needs "
                f'reduction="mean", got reduction={reduction!r}'
            )
        if isinstance(num_items_in_batch, Tensor):
            if num_items_in_batch.numel() != 1:
                raise ValueError(
                    f"num_items_in_batch: expected one number, got {_describe(num_items_in_batch)}"
                )
            count = num_items_in_batch.to(device=flat_target.device, dtype=acc).reshape(())
            if validate and not bool(count > 0):
                raise ValueError(f"num_items_in_batch: expected a count > 0, got {count.item()}")
        else:
            count = torch.tensor(check_positive(num_items_in_batch, "num_items_in_batch"))
            count = count.to(device=flat_target.device, dtype=acc)
        return count.reciprocal()
    if reduction == "none":
        return None
    if reduction == "sum":
        return torch.ones((), dtype=acc, device=flat_target.device)
    return mean_denominator(flat_target, None, ignore_index, acc).reciprocal()


def _chunk_size_of(chunk_size: Any, weight: Tensor) -> int:
    """``chunk_size`` checked, or the default for a (V, H) weight (see ``CHUNK_TOKENS_PER_WIDTH``)."""
    if chunk_size is not None:
        return check_int(chunk_size, "chunk_size", min_value=1)
    vocab, width = weight.shape
    tokens = max(CHUNK_MIN_TOKENS, width // CHUNK_TOKENS_PER_WIDTH)
    return max(1, min(tokens, CHUNK_MAX_LOGITS // vocab))


def linear_calibration_loss(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    bias: Tensor | None = None,
    *,
    loss: str = "dual_focal",
    gamma: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    num_items_in_batch: Tensor | int | None = None,
    chunk_size: int | None = None,
    softcap: float | None = None,
    validate: bool = True,
    **options: Any,
) -> Tensor:
    r"""A calibration loss of the logits :math:`z = hW^\top + b`, computed without holding them.

    .. math:: L = \frac{1}{D}\sum_{i:\,y_i \ne \text{ignore}} \ell(z_i, y_i),\qquad
              z_i = c\tanh\!\Bigl(\frac{h_i W^\top + b}{c}\Bigr)\ \text{(soft-capped when } c
              \text{ is given)}

    with :math:`\ell` the per-token loss ``loss`` (the same kernel as
    ``get_loss(loss, gamma=gamma, **options)``) and :math:`D` the number of counted tokens
    (``reduction="mean"``), ``num_items_in_batch`` when given (Hugging Face's normalisation,
    which makes gradient accumulation exact), or 1 (``"sum"``). ``"none"`` returns the
    per-token losses (0 where ignored). Equal, to rounding, to the materialised
    ``loss_fn(hidden @ weight.T + bias, target)``, values and gradients.

    Tokens are processed ``chunk_size`` at a time, each chunk with its full vocabulary rows (so
    the log-sum-exp, :math:`p_y` and the runner-up :math:`p_j` of dual focal loss are exact).
    Memory: one chunk's logits and the loss's (chunk, V) temporaries (about three of them), plus
    the gradients of ``hidden`` (N, H) and ``weight`` (V, H, fp32), never (N, V). With
    ``reduction="none"`` the gradient is computed in backward by a second sweep (same memory,
    twice the matmuls), because per-token output weights do not factor out of
    :math:`\partial L/\partial W`. fp16/bf16 add a (V, H) input-dtype temporary per chunk.

    Args:
        hidden: (N, H) or (B, T, H) hidden states (fp16, bf16, fp32 or fp64).
        weight: (V, H) output-layer weight, same dtype and device as ``hidden``.
        target: (N) or (B, T) integer labels in [0, V), or ``ignore_index``.
        bias: optional (V,) output-layer bias.
        loss: one of ``LINEAR_LOSSES`` (``"ce"``, ``"focal"``, ``"flsd53"``, ``"flsd52"``,
            ``"flsc531"``, ``"flsc532"``, ``"dual_focal"``, ``"dual_flsd53"`` (DFL-SD),
            ``"inverse_focal"``, ``"label_smoothing"``, ``"brier"``, ``"dft"``) or an alias.
        gamma: γ of the γ-based losses (a number, a policy name or a
            :class:`~focalcal.losses.gamma.GammaPolicy`); None keeps the loss's default.
        ignore_index: label of the tokens that count for nothing (padding, prompt).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shape of ``target``).
        num_items_in_batch: the mean's denominator instead of this batch's token count (> 0;
            ``reduction="mean"`` only).
        chunk_size: tokens per chunk (≥ 1); default ``H // 8`` tokens, at least 128, at most
            ``2**24 // V`` (64 MiB of fp32 logits).
        softcap: c > 0 for final-logit soft-capping :math:`c\tanh(z/c)` (Gemma 2), or None.
        validate: check label range and ``num_items_in_batch`` > 0 (one device sync each).
        options: further options of the loss (``eps``, ``convention`` for label smoothing).

    Returns:
        A scalar, or the per-token losses (shape of ``target``) for ``reduction="none"``.

    Reference:
        Hsu et al., *Liger Kernel*, 2024 (chunked fused linear cross-entropy); Wijmans et al.,
        *Cut Your Losses in Large-Vocabulary Language Models*, ICLR 2025.

    Example:
        >>> import torch
        >>> hidden = torch.randn(6, 4, requires_grad=True)
        >>> head = torch.randn(10, 4, requires_grad=True)
        >>> target = torch.tensor([1, 2, 3, -100, 5, 6])
        >>> loss = linear_calibration_loss(hidden, head, target, loss="dual_focal", chunk_size=4)
        >>> from focalcal.losses import dual_focal_loss
        >>> torch.allclose(loss, dual_focal_loss(hidden @ head.T, target))
        True
        >>> loss.backward()
    """
    _check_layer(hidden, weight, bias)
    check_choice(reduction, "reduction", REDUCTIONS)
    vocab = weight.shape[0]
    flat_target = _check_target(target, hidden, vocab, ignore_index, validate)
    if flat_target.numel() == 0:
        raise ValueError(f"hidden: expected at least one token, got shape {tuple(hidden.shape)}")
    if softcap is not None:
        softcap = check_positive(softcap, "softcap")
    if gamma is not None:
        options["gamma"] = gamma
    plan = _Plan(
        _build_criterion(loss, "none" if reduction == "none" else "sum", ignore_index, options),
        _chunk_size_of(chunk_size, weight),
        softcap,
    )
    return _apply(plan, hidden, weight, bias, flat_target, reduction, num_items_in_batch, validate)


def _apply(
    plan: _Plan,
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    flat_target: Tensor,
    reduction: str,
    num_items_in_batch: Any,
    validate: bool,
) -> Tensor:
    """Run the fused function on validated input; the per-token result takes the target's shape."""
    acc = _accumulation_dtype(weight)
    scale = _normaliser(
        num_items_in_batch, reduction, flat_target, plan.criterion.ignore_index, acc, validate
    )
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    with torch.autocast(hidden.device.type, enabled=False):
        value = _LinearLoss.apply(flat_hidden, weight, bias, flat_target, plan, scale)
    return value.view(hidden.shape[:-1]) if reduction == "none" else value


class LinearCalibrationLoss(nn.Module):
    r"""Module form of :func:`linear_calibration_loss`: ``forward(hidden, weight, target, bias)``.

    ``LinearCalibrationLoss(loss="dual_focal", gamma=5.0)``; every keyword option of the
    functional (``gamma``, ``ignore_index``, ``reduction``, ``chunk_size``, ``softcap``,
    ``validate``, ``eps``, ...) is fixed at construction, and the per-chunk loss module is built
    once. ``set_epoch`` advances a scheduled γ (FLSc-531). ``forward`` also takes
    ``num_items_in_batch``.

    Shape:
        - hidden: (N, H) or (B, T, H); weight: (V, H); target: (N) or (B, T); bias: (V).
        - output: scalar, or the shape of ``target`` with ``reduction="none"``.

    Example:
        >>> import torch
        >>> criterion = LinearCalibrationLoss(loss="flsd53", chunk_size=64)
        >>> hidden = torch.randn(2, 50, 16, requires_grad=True)
        >>> head = torch.nn.Linear(16, 100)
        >>> criterion(hidden, head.weight, torch.randint(0, 100, (2, 50)), head.bias).backward()
    """

    def __init__(
        self,
        loss: str = "dual_focal",
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        chunk_size: int | None = None,
        softcap: float | None = None,
        validate: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        check_choice(reduction, "reduction", REDUCTIONS)
        if options.get("gamma", 0) is None:
            del options["gamma"]
        self.loss = loss
        self.reduction = reduction
        self.chunk_size = (
            None if chunk_size is None else check_int(chunk_size, "chunk_size", min_value=1)
        )
        self.softcap = None if softcap is None else check_positive(softcap, "softcap")
        self.validate = validate
        self.criterion = _build_criterion(
            loss, "none" if reduction == "none" else "sum", ignore_index, dict(options)
        )

    @property
    def ignore_index(self) -> int:
        return self.criterion.ignore_index

    def set_epoch(self, epoch: int) -> None:
        """Advance an epoch-scheduled γ; a no-op for other losses."""
        set_epoch = getattr(self.criterion, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)

    def forward(
        self,
        hidden: Tensor,
        weight: Tensor,
        target: Tensor,
        bias: Tensor | None = None,
        *,
        num_items_in_batch: Tensor | int | None = None,
    ) -> Tensor:
        _check_layer(hidden, weight, bias)
        vocab = weight.shape[0]
        flat_target = _check_target(target, hidden, vocab, self.ignore_index, self.validate)
        plan = _Plan(self.criterion, _chunk_size_of(self.chunk_size, weight), self.softcap)
        return _apply(
            plan, hidden, weight, bias, flat_target, self.reduction, num_items_in_batch,
            self.validate,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, chunk_size={self.chunk_size}, softcap={self.softcap}"
