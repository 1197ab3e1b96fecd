r"""Smooth ECE (Błasiok & Nakkiran 2023) with its automatic bandwidth, in torch.

The residuals :math:`r_i = f_i - y_i` (confidence minus correctness) are kernel-smoothed with a
Gaussian kernel reflected at 0 and 1, and the smooth ECE is the integral of the absolute
smoothed residual:

.. math::
    \hat r_\sigma(t) = \frac1N\sum_i \tilde K_\sigma(t, f_i)\,(f_i - y_i),\qquad
    \mathrm{smECE}_\sigma = \int_0^1 |\hat r_\sigma(t)|\,dt

The bandwidth is the fixed point :math:`\sigma^* = \mathrm{smECE}_{\sigma^*}`, found by
bisection. Everything follows the released reference package ``relplot`` (1.0.x, ``smECE``):
Nadaraya–Watson smoothing of the residuals, with the data linearly interpolated onto a grid of
``max(2000, round(20/σ)) // 2 + 1`` points, the reflected kernel evaluated on that grid, the
smoothed curves interpolated at ``max(200, round(10/σ))`` points, a density floor of ``1e-4``,
and 10 bisection steps from σ = 1 with the search floor ``eps = 0.001``. Convolutions use an FFT
in float64 instead of ``numpy.convolve``; results agree with relplot to ~1e-10.

Reference: J. Błasiok, P. Nakkiran, "Smooth ECE: Principled Reliability Diagrams via Kernel
Smoothing", ICLR 2024 (arXiv 2309.12236).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from focalcal._validation import restore_kind
from focalcal.metrics._core import prepare_inputs, top_label_pairs

__all__ = ["smooth_ece"]

_MESH_POINTS = 200


def _round_to_grid(f: Tensor, values: Tensor, points: int) -> Tensor:
    """Spread each column of ``values`` (N, K) onto its two neighbouring points of
    ``linspace(0, 1, points)``, linearly; returns (K, points)."""
    position = f * (points - 1)
    index = position.long().clamp_(0, points - 2)
    frac = (position - index).unsqueeze(1)
    grid = torch.zeros(points, values.shape[1], dtype=f.dtype, device=f.device)
    grid.index_add_(0, index, (1 - frac) * values)
    grid.index_add_(0, index + 1, frac * values)
    return grid.T


def _reflected_smooth(grid: Tensor, sigma: float) -> Tensor:
    """Convolve rows of ``grid`` (K, m) with a Gaussian of width ``sigma``, reflected at 0 and 1."""
    m = grid.shape[-1]
    t = torch.linspace(0, 1, m, dtype=grid.dtype, device=grid.device)
    kernel = torch.exp(-(t - 0.5).square() / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    flipped = grid.flip(-1)
    extended = torch.cat([flipped[..., :-1], grid, flipped[..., 1:]], dim=-1)  # 3m - 2
    size = extended.shape[-1] + m - 1
    full = torch.fft.irfft(torch.fft.rfft(extended, size) * torch.fft.rfft(kernel, size), size)
    start = (m - 1) + m // 2  # 'valid' part starts at m - 1; relplot keeps [m//2, m//2 + m)
    return full[..., start : start + m]


def _interpolate(t: Tensor, grid: Tensor) -> Tensor:
    """Piecewise-linear interpolation at ``t`` of rows of values given on ``linspace(0, 1, m)``."""
    m = grid.shape[-1]
    index = (t * (m - 1)).long().clamp_(0, m - 2)
    frac = (t - index / (m - 1)) * (m - 1)
    return grid[..., index] * (1 - frac) + grid[..., index + 1] * frac


def _smooth_ece_on_grid(grid: Tensor, sigma: float) -> Tensor:
    """smECE at ``sigma`` from the gridded (residual, count) rows of :func:`_round_to_grid`."""
    smoothed = _reflected_smooth(grid, sigma)
    m = max(round(10 / sigma), _MESH_POINTS)
    t = torch.linspace(0, 1, m, dtype=grid.dtype, device=grid.device)
    numerator, density = _interpolate(t, smoothed)
    density = density + 1e-4
    return ((numerator / density).abs() * density).sum() / density.sum()


def _grid_points(sigma: float) -> int:
    return max(2000, round(20 / sigma)) // 2 + 1


def _pairs_on_grid(confidence: Tensor, correct: Tensor) -> Callable[[int], Tensor]:
    """Memoised gridding of the (residual, 1) values of the pairs, by grid size."""
    f = confidence.detach().to(torch.float64)
    values = torch.stack([f - correct.detach().to(torch.float64), torch.ones_like(f)], dim=1)
    cache: dict[int, Tensor] = {}

    def grid(points: int) -> Tensor:
        if points not in cache:
            cache[points] = _round_to_grid(f, values, points)
        return cache[points]

    return grid


def _smooth_ece_at(confidence: Tensor, correct: Tensor, sigma: float) -> Tensor:
    """Smooth ECE at a fixed bandwidth ``sigma`` (relplot ``smECE_sigma``), float64 0-d."""
    return _smooth_ece_on_grid(_pairs_on_grid(confidence, correct)(_grid_points(sigma)), sigma)


def _smooth_ece_from_pairs(
    confidence: Tensor, correct: Tensor, *, eps: float = 1e-3, return_bandwidth: bool = False
) -> Tensor | tuple[Tensor, float]:
    """Smooth ECE of (confidence, correct) pairs, both (N,); optionally with the bandwidth σ*.

    σ* is found by 10 bisection steps on ``σ < smECE_σ`` from σ = 1 (relplot's search).
    """
    grid = _pairs_on_grid(confidence, correct)

    def value_at(alpha: float) -> Tensor:
        return _smooth_ece_on_grid(grid(_grid_points(alpha)), alpha)

    def below_fixed_point(alpha: float) -> bool:
        return alpha < eps or alpha < float(value_at(alpha))

    sigma = 1.0
    if not below_fixed_point(sigma):
        hi, lo = 1.0, 0.0
        for _ in range(10):
            mid = (hi + lo) / 2
            if below_fixed_point(mid):
                lo = mid
            else:
                hi = mid
        sigma = hi
    value = value_at(sigma)
    return (value, sigma) if return_bandwidth else value


def smooth_ece(
    probs: Any,
    labels: Any,
    *,
    from_logits: bool = False,
    ignore_index: int | None = None,
    validate: bool = True,
) -> Tensor | np.ndarray:
    r"""Top-label smooth ECE with the automatic bandwidth (Błasiok & Nakkiran 2023).

    .. math::
        \mathrm{smECE} = \int_0^1 \Big|\frac1N\sum_i \tilde K_{\sigma^*}(t, f_i)
        (f_i - \mathbb 1[\hat y_i = y_i])\Big|\,dt,\qquad \sigma^* = \mathrm{smECE}_{\sigma^*}

    with :math:`f_i = \max_c p_{ic}` and :math:`\tilde K` a Gaussian reflected at 0 and 1. Matches
    ``relplot.smECE(f, y)`` (see the module docstring). Arguments as
    :func:`focalcal.metrics.ece`; returns a float64 0-d tensor in [0, 1].

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
        >>> value = smooth_ece(p, torch.tensor([0, 1, 1, 0]))
        >>> 0 < float(value) < 1
        True
    """
    x, y, was_numpy = prepare_inputs(
        probs, labels, from_logits=from_logits, ignore_index=ignore_index, validate=validate
    )
    confidence, correct = top_label_pairs(x, y, from_logits)
    value = _smooth_ece_from_pairs(confidence, correct)
    return restore_kind(value, was_numpy)  # type: ignore[arg-type]
