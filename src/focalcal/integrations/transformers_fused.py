r"""Train a Hugging Face causal language model with a fused calibration loss.

:func:`enable_fused_calibration_loss` makes a model's training forward compute its loss with
:func:`~focalcal.losses.linear_calibration_loss` from the last hidden state and the ``lm_head``
weight (and bias, and ``config.final_logit_softcapping`` when set), so the (tokens × vocabulary)
logits are never built. Labels are shifted exactly as the model's own causal-LM loss
(``transformers.loss.loss_utils.ForCausalLMLoss``) shifts them: position t predicts
``labels[t + 1]``, the last position and ``-100`` count for nothing, and a ``shift_labels``
argument, when given, is used as is. ``num_items_in_batch`` (which ``transformers.Trainer``
passes under gradient accumulation) replaces the mean's denominator, as in the model's own loss.

The call replaces the model instance's ``forward`` (not its class's): in training mode with
``labels`` it runs ``model.base_model`` and the fused loss, and returns a
``CausalLMOutputWithPast`` whose ``logits`` is None; in evaluation mode or without labels it
calls the class's own ``forward`` unchanged, so evaluation (whose loss is the model's own
cross-entropy), generation and saving are unaffected. :func:`disable_fused_calibration_loss`
undoes it.

Limits: decoder-only models whose forward is ``base_model → lm_head (→ soft-capping) →
ForCausalLMLoss`` (GPT-2, Llama, Mistral, Qwen, Gemma 2/3, ... ); models that rescale the logits
(``logit_scale``, ``logits_scaling``) or add a router loss (``output_router_logits``) are refused
with an error; in training the output has no logits.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

from torch import nn

from focalcal._optional import require
from focalcal.losses.linear import LinearCalibrationLoss

__all__ = ["disable_fused_calibration_loss", "enable_fused_calibration_loss"]

#: Config attributes with which a model's forward transforms the logits in a way the fused path
#: does not reproduce.
_UNSUPPORTED_CONFIG = ("logit_scale", "logits_scaling")
#: The model's loss arguments; they go to the fused loss, not to the base model.
_LOSS_ARGUMENTS = ("labels", "num_items_in_batch", "shift_labels", "logits_to_keep")


def enable_fused_calibration_loss(
    model: nn.Module, loss: str = "dual_focal", **options: Any
) -> nn.Module:
    r"""Make ``model``'s training loss a fused calibration loss; returns ``model``.

    .. math:: L = \frac{1}{D}\sum_{t:\,y_{t+1}\ne -100}\ell\bigl(\mathrm{lm\_head}(h_t),
              y_{t+1}\bigr)

    with :math:`D` the number of counted tokens, or ``num_items_in_batch`` when the caller (the
    Trainer) passes it. ``loss`` and ``options`` (``gamma``, ``chunk_size``, ``eps``, ...) are those
    of :class:`~focalcal.losses.LinearCalibrationLoss`; the soft-capping comes from the config.
    The loss module is ``model.calibration_loss`` (call its ``set_epoch`` for a scheduled γ).

    Args:
        model: a ``transformers`` causal LM (``PreTrainedModel`` with ``lm_head``).
        loss: a per-token loss name (default dual focal).
        options: keyword options of :class:`~focalcal.losses.LinearCalibrationLoss`.

    Example:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50))
        >>> model = enable_fused_calibration_loss(model, "dual_focal", gamma=5.0).train()
        >>> ids = torch.randint(0, 50, (2, 8))
        >>> out = model(input_ids=ids, labels=ids)
        >>> out.logits is None
        True
        >>> out.loss.backward()
    """
    require("transformers", "transformers")
    from transformers.loss.loss_utils import ForCausalLMLoss

    config = getattr(model, "config", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if config is None or not isinstance(head, nn.Linear) or model.base_model is model:
        raise TypeError(
            f"model: expected a transformers causal LM with a base model and an nn.Linear "
            f"lm_head, got {type(model).__name__}"
        )
    if getattr(config, "is_encoder_decoder", False) or model.loss_function is not ForCausalLMLoss:
        raise ValueError(
            f"model: expected a decoder-only causal LM whose loss is ForCausalLMLoss, got "
            f"{type(model).__name__} (loss_type={getattr(model, 'loss_type', None)!r})"
        )
    for name in (*_UNSUPPORTED_CONFIG, "output_router_logits"):
        if getattr(config, name, None) not in (None, False):
            raise ValueError(
                f"model: config.{name}={getattr(config, name)!r} changes the logits or adds a "
                f"loss that the fused path does not reproduce; {type(model).__name__} is not "
                "supported"
            )
    options.setdefault("softcap", getattr(config, "final_logit_softcapping", None))
    model.calibration_loss = LinearCalibrationLoss(loss, **options)
    model.forward = types.MethodType(_wrap_forward(type(model).forward), model)
    return model


def disable_fused_calibration_loss(model: nn.Module) -> nn.Module:
    """Undo :func:`enable_fused_calibration_loss`: the model's own forward and loss again."""
    model.__dict__.pop("forward", None)
    if "calibration_loss" in model._modules:
        del model.calibration_loss
    return model


def _wrap_forward(original: Callable[..., Any]) -> Callable[..., Any]:
    """The instance forward: the class's ``original`` one, or the fused loss when training with
    labels. It carries ``original``'s signature, which the Trainer reads (to keep the dataset's
    columns and to pass ``num_items_in_batch``)."""

    @functools.wraps(original)
    def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.training:
            named = _named_arguments(original, self, args, kwargs)
            if named.get("labels") is not None:
                return _fused_training_forward(self, named)
        return original(self, *args, **kwargs)

    return forward


def _named_arguments(
    function: Callable[..., Any], self: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Every argument of a call of ``function`` by name (its ``**kwargs`` flattened in)."""
    signature = inspect.signature(function)
    named: dict[str, Any] = {}
    for index, (name, value) in enumerate(signature.bind(self, *args, **kwargs).arguments.items()):
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError(f"{function.__qualname__}: unexpected positional arguments")
        elif index > 0:
            named[name] = value
    return named


def _fused_training_forward(model: nn.Module, named: dict[str, Any]) -> Any:
    """Base model → last hidden state → fused loss against the shifted labels."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    labels = named.pop("labels")
    shift_labels = named.pop("shift_labels", None)
    num_items_in_batch = named.pop("num_items_in_batch", None)
    named.pop("logits_to_keep", None)  # training computes the loss at every position
    criterion = model.calibration_loss
    outputs = model.base_model(**named)
    hidden = outputs[0]
    if shift_labels is None:
        # as ForCausalLMLoss: position t predicts labels[t + 1]; the last position predicts none
        padded = nn.functional.pad(labels, (0, 1), value=criterion.ignore_index)
        shift_labels = padded[..., 1:]
    head = model.get_output_embeddings()
    loss = criterion(
        hidden,
        head.weight,
        shift_labels.to(hidden.device),
        head.bias,
        num_items_in_batch=num_items_in_batch,
    )
    # the base model's cache, hidden states and attentions, under this transformers' field names
    carried = {
        name: getattr(outputs, name, None)
        for name in CausalLMOutputWithPast.__dataclass_fields__
        if name not in ("loss", "logits")
    }
    return CausalLMOutputWithPast(loss=loss, logits=None, **carried)
