"""Logits of a whole split, in order, in evaluation mode (deterministic, no sampler, no gathering)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["predict_logits"]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    inputs: Tensor,
    *,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 500,
    device: torch.device | str | None = None,
) -> Tensor:
    """Float32 logits (N, C) of ``model`` on ``inputs`` (N, ...), batch by batch, on ``device``.

    The model is put in eval mode (and left there). Batches are taken in order with a fixed
    size, so the same weights give bit-identical logits whichever process computes them
    (for a given device, thread count and kernel selection).

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(4, 3)
        >>> predict_logits(net, torch.zeros(10, 4), batch_size=3).shape
        torch.Size([10, 3])
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
    param = next(iter(model.parameters()), None)
    if device is None:
        device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    model.eval()
    chunks = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size].to(device, non_blocking=True)
        if transform is not None:
            batch = transform(batch)
        if batch.is_floating_point():
            batch = batch.to(dtype)
        chunks.append(model(batch).float())
    if not chunks:
        raise ValueError("inputs: expected at least one sample, got an empty split")
    return torch.cat(chunks)
