"""Networks of the papers and small baselines, behind one registry.

``get_model(name, num_classes, in_channels=3, **kwargs)`` builds:

==========================  ==================================================================
name                        network
==========================  ==================================================================
``resnet50``                papers' CIFAR ResNet-50: 4-stage bottleneck [3, 4, 6, 3], 3×3 stem
``resnet110``               papers' "ResNet-110": 4-stage bottleneck [3, 4, 26, 3]
``wide_resnet26_10``        papers' WRN-26-10: 3 × 4 post-activation basic blocks, 160/320/640
``densenet121``             CIFAR DenseNet-121: [6, 12, 24, 16], growth 32, compression 0.5
``resnet20``, ``resnet8``   He et al. CIFAR ResNets (also 32, 56, ``resnet110_he``), option A
``small_cnn``               2 conv blocks + 2-layer head for 28×28 inputs
``mlp``                     ``mlp(in_features, hidden=256, depth=2)`` for feature vectors
==========================  ==================================================================

:func:`check_compatibility` checks a dataset against a model (channels, feature size, number of
classes, and a one-sample dry run) so that a mismatch fails before training starts.

Example:
    >>> import torch
    >>> from focalcal.models import get_model
    >>> net = get_model("resnet8", num_classes=10)
    >>> net(torch.zeros(4, 3, 32, 32)).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._registry import Registry
from .._validation import check_int, check_kwargs
from .densenet import DenseNet, densenet121
from .resnet import (
    BottleneckResNet,
    CifarResNet,
    resnet8,
    resnet20,
    resnet32,
    resnet50,
    resnet56,
    resnet110,
    resnet110_he,
)
from .small import MLP, SmallCNN, mlp, small_cnn
from .wide_resnet import WideResNet, wide_resnet26_10

__all__ = [
    "MLP",
    "MODELS",
    "BottleneckResNet",
    "CifarResNet",
    "DenseNet",
    "SmallCNN",
    "WideResNet",
    "check_compatibility",
    "count_parameters",
    "densenet121",
    "get_model",
    "mlp",
    "resnet8",
    "resnet20",
    "resnet32",
    "resnet50",
    "resnet56",
    "resnet110",
    "resnet110_he",
    "small_cnn",
    "wide_resnet26_10",
]

MODELS: Registry[nn.Module] = Registry("model")

for _name, _factory in {
    "resnet50": resnet50,
    "resnet110": resnet110,
    "wide_resnet26_10": wide_resnet26_10,
    "densenet121": densenet121,
    "resnet8": resnet8,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet56": resnet56,
    "resnet110_he": resnet110_he,
    "small_cnn": small_cnn,
}.items():
    MODELS.register(_name)(_factory)
MODELS.register("wrn26_10")(wide_resnet26_10)


@MODELS.register("mlp")
def _mlp(
    num_classes: int,
    in_channels: int = 3,
    in_features: int | None = None,
    hidden: int = 256,
    depth: int = 2,
    dropout: float = 0.0,
) -> MLP:
    if in_features is None:
        raise TypeError(
            "mlp: missing keyword in_features (the feature-vector length, e.g. "
            "get_model('mlp', num_classes=20, in_features=384))"
        )
    return mlp(in_features, num_classes, hidden, depth, dropout)


def get_model(name: str, num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build the network registered under ``name`` (unknown names list the valid ones).

    Args:
        name: see the module table (case-insensitive, ``-`` = ``_``).
        num_classes: number of output logits (>= 1).
        in_channels: input image channels (ignored by ``mlp``, which takes ``in_features``).
        **kwargs: model options, e.g. ``shortcut="B"`` for He et al. ResNets, ``pool_size=2``
            for the Tiny-ImageNet ResNet-50, ``hidden``/``depth``/``dropout`` for ``mlp``.

    Example:
        >>> from focalcal.models import get_model
        >>> get_model("mlp", num_classes=3, in_features=8, depth=1, hidden=4)
        MLP(
          (net): Sequential(
            (0): Linear(in_features=8, out_features=4, bias=True)
            (1): ReLU(inplace=True)
            (2): Linear(in_features=4, out_features=3, bias=True)
          )
        )
    """
    factory = MODELS.factory(name)
    check_kwargs(factory, kwargs, name, skip=("num_classes", "in_channels"))
    num_classes = check_int(num_classes, "num_classes", min_value=1)
    in_channels = check_int(in_channels, "in_channels", min_value=1)
    return factory(num_classes=num_classes, in_channels=in_channels, **kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_declared_sizes(
    model: nn.Module, shape: tuple[int, ...], n_classes: int, ds: str, mdl: str
) -> None:
    """The model's declared ``in_features`` / ``in_channels`` / ``num_classes`` against the data."""
    in_features = getattr(model, "in_features", None)
    in_channels = getattr(model, "in_channels", None)
    if in_features is not None:
        if len(shape) != 1:
            raise ValueError(
                f"{mdl} takes feature vectors of length {in_features} but {ds} holds images of "
                f"shape {shape}; use an image model (e.g. resnet20, small_cnn)"
            )
        if shape[0] != in_features:
            raise ValueError(
                f"{mdl} expects {in_features} input features but {ds} has {shape[0]}; "
                f"build the model with in_features={shape[0]}"
            )
    if in_channels is not None:
        if len(shape) != 3:
            raise ValueError(
                f"{mdl} takes images (C, H, W) but {ds} has input shape {shape}; "
                f"use get_model('mlp', ..., in_features={shape[0] if shape else '?'})"
            )
        if shape[0] != in_channels:
            raise ValueError(
                f"{mdl} expects {in_channels} input channels but {ds} has {shape[0]} "
                f"(input shape {shape}); build the model with in_channels={shape[0]}"
            )
    model_classes = getattr(model, "num_classes", None)
    if model_classes is not None and model_classes != n_classes:
        raise ValueError(
            f"{mdl} has {model_classes} outputs but {ds} has {n_classes} classes; "
            f"build the model with num_classes={n_classes}"
        )


def check_compatibility(dataset: Any, model: nn.Module, *, dry_run: bool = True) -> None:
    """Raise ``ValueError`` if ``model`` cannot be trained on ``dataset``.

    ``dataset`` is anything with ``input_shape`` ((C, H, W) images or (F,) features) and
    ``num_classes`` (every :mod:`focalcal.data` dataset). Checks, in order: image vs feature input,
    ``in_channels`` / ``in_features``, ``num_classes``, then (``dry_run``) one zero sample through
    the model in eval mode without gradients, which must give logits of shape (1, num_classes).
    The dry run catches inputs too small for the network and any model without the attributes.

    Example:
        >>> from types import SimpleNamespace
        >>> from focalcal.models import check_compatibility, get_model
        >>> mnist_like = SimpleNamespace(input_shape=(1, 28, 28), num_classes=10, name="mnist")
        >>> check_compatibility(mnist_like, get_model("small_cnn", 10, in_channels=1))
        >>> check_compatibility(mnist_like, get_model("resnet8", 10))
        Traceback (most recent call last):
        ...
        ValueError: model CifarResNet expects 3 input channels but dataset 'mnist' has 1 (input shape (1, 28, 28)); build the model with in_channels=1
    """
    try:
        shape = tuple(int(s) for s in dataset.input_shape)
        n_classes = int(dataset.num_classes)
    except (AttributeError, TypeError) as err:
        raise TypeError(
            f"dataset: expected an object with input_shape and num_classes, got {type(dataset).__name__}"
        ) from err
    ds = f"dataset {getattr(dataset, 'name', type(dataset).__name__)!r}"
    mdl = f"model {type(model).__name__}"
    _check_declared_sizes(model, shape, n_classes, ds, mdl)
    if not dry_run:
        return
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *shape), device=device, dtype=dtype))
    except Exception as err:  # any failure of the dry run is an incompatibility
        raise ValueError(
            f"{mdl} cannot process one sample of {ds} (input shape {shape}): "
            f"{type(err).__name__}: {err}. Resize the images (e.g. image_size=...) or pick "
            f"another model."
        ) from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{mdl} maps one sample of {ds} to output {got}, expected logits of shape "
            f"(1, {n_classes})"
        )
