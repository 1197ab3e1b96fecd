r"""The specification of the focal family: each loss defined on one row, the formula as code.

Every focal-type loss of :mod:`focalcal.losses` is, for one item with logits :math:`z` and
target :math:`y`,

.. math:: \ell = -b^{\gamma}\log p_y,\qquad p = \mathrm{softmax}(z),\qquad
          b = \begin{cases} 1 - p_y & \text{focal loss (FL, FLSD, FLSc, AdaFocal)}\\
          1 - p_y + p_j & \text{dual focal loss (DFL, DFL-SD, AdaDualFocal)}\\
          1 + p_y & \text{inverse focal loss (and AdaFocal's bins with } \gamma < 0)
          \end{cases}

where :math:`p_j` is the largest probability **strictly below** :math:`p_y` (0 if there is
none) and a sample-dependent γ is computed from detached probabilities (no gradient flows
through γ). The row functions here state that definition as directly as possible, in plain
autograd; the batched kernels (:mod:`focalcal.losses._kernel`, the fused C++ kernel) must agree
with them, which the tests check. They are slow (a Python loop over classes) and meant for
reading and testing, not training.

:func:`focal_family_items` is the same definition for a whole batch, written with
differentiable torch operations only; the kernel uses it for second derivatives.

Example:
    >>> import torch
    >>> z = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    >>> round(focal_row(z, 0, 2.0).item(), 6)
    0.045678
    >>> runner_up(torch.log_softmax(z, 0), 1)  # p_j for target 1 is class 2, not class 0
    2
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from focalcal.losses._kernel import GammaFn
    from focalcal.losses.gamma import GammaPolicy

__all__ = [
    "ada_dual_focal_row",
    "adafocal_row",
    "bin_of",
    "dual_focal_row",
    "focal_family_items",
    "focal_row",
    "inverse_focal_row",
    "row_losses",
    "runner_up",
]


def runner_up(log_p: Tensor, y: int) -> int | None:
    """The class j of :math:`p_j`: the largest probability strictly below the target's, the
    lowest index among equal ones; None when no class is below (target smallest, all tied)."""
    below = [c for c in range(log_p.numel()) if log_p[c].item() < log_p[y].item()]
    if not below:
        return None
    return max(below, key=lambda c: (log_p[c].item(), -c))


def _gamma_at(gamma: float | GammaPolicy, reference: Tensor) -> float:
    """γ of one item: a number, or a policy evaluated on the detached reference probability."""
    if isinstance(gamma, (int, float)):
        return float(gamma)
    return float(torch.as_tensor(gamma(reference.detach().reshape(1))).reshape(()))


def focal_row(z: Tensor, y: int, gamma: float | GammaPolicy) -> Tensor:
    r"""Focal loss :math:`-(1 - p_y)^{\gamma}\log p_y` of one row (γ policies see :math:`p_y`)."""
    log_p = torch.log_softmax(z, dim=0)
    p_y = log_p[y].exp()
    return -((1 - p_y) ** _gamma_at(gamma, p_y)) * log_p[y]


def inverse_focal_row(z: Tensor, y: int, gamma: float | GammaPolicy) -> Tensor:
    r"""Inverse focal loss :math:`-(1 + p_y)^{\gamma}\log p_y` of one row."""
    log_p = torch.log_softmax(z, dim=0)
    p_y = log_p[y].exp()
    return -((1 + p_y) ** _gamma_at(gamma, p_y)) * log_p[y]


def dual_focal_row(z: Tensor, y: int, gamma: float | GammaPolicy) -> Tensor:
    r"""Dual focal loss :math:`-(1 - p_y + p_j)^{\gamma}\log p_y` of one row (γ policies see
    the margin :math:`p_y - p_j`; DFL-SD)."""
    log_p = torch.log_softmax(z, dim=0)
    p = log_p.exp()
    j = runner_up(log_p, y)
    p_j = p[j] if j is not None else torch.zeros_like(p[y])
    return -((1 - p[y] + p_j) ** _gamma_at(gamma, p[y] - p_j)) * log_p[y]


def bin_of(value: Tensor, edges: Sequence[float]) -> int:
    r"""The bin :math:`(e_b, e_{b+1}]` holding ``value``, edges rounded to the value's dtype;
    values at or below the lowest edge go to bin 0, above the highest to the last bin."""
    inner = torch.tensor(list(edges)[1:-1], dtype=torch.float64).to(value.dtype)
    return sum(int(value.item() > e) for e in inner.tolist())


def adafocal_row(
    z: Tensor, y: int, edges: Sequence[float], gammas: Sequence[float], *, signed: bool = True
) -> Tensor:
    r"""AdaFocal of one row: focal loss with the γ of the bin of :math:`p_y`; with ``signed``
    (official AdaFocal) a negative bin γ means inverse focal loss with :math:`|\gamma|`."""
    p_y = torch.softmax(z, dim=0)[y]
    gamma = float(gammas[bin_of(p_y.detach(), edges)])
    if signed and gamma < 0:
        return inverse_focal_row(z, y, -gamma)
    return focal_row(z, y, gamma)


def ada_dual_focal_row(
    z: Tensor, y: int, edges: Sequence[float], gammas: Sequence[float]
) -> Tensor:
    r"""AdaDualFocal of one row: dual focal loss with the γ of the bin of the margin
    :math:`p_y - p_j`."""
    log_p = torch.log_softmax(z, dim=0)
    j = runner_up(log_p, y)
    margin = log_p[y].exp() - (log_p[j].exp() if j is not None else 0.0)
    return dual_focal_row(z, y, float(gammas[bin_of(margin.detach(), edges)]))


def row_losses(
    row_loss: Callable[..., Tensor], logits: Tensor, target: Tensor, *args: Any, **kwargs: Any
) -> Tensor:
    """``row_loss(z, y, *args, **kwargs)`` of every row of (N, C) ``logits``, stacked: (N,).

    Example:
        >>> logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
        >>> row_losses(dual_focal_row, logits, torch.tensor([1, 0]), 2.0).shape
        torch.Size([2])
    """
    return torch.stack(
        [row_loss(z, y, *args, **kwargs) for z, y in zip(logits, target.tolist(), strict=True)]
    )


def focal_family_items(
    logits: Tensor, index: Tensor, gamma_fn: GammaFn, *, runner_up: bool = False
) -> Tensor:
    r"""The per-item focal-family loss :math:`-b^{\gamma}\log p_y` of a batch, (N, 1, d1, ...).

    The rows' definition in differentiable torch operations, so its derivatives of every order
    are exact (γ and the choice of :math:`p_j` are piecewise constant and carry no gradient).
    ``index`` is the (N, 1, d1, ...) target (any valid class for ignored items); ``gamma_fn``
    maps the detached ``(p_y, p_j)`` to ``(γ, inverse)`` as in
    :func:`~focalcal.losses._kernel.focal_family_loss`. :math:`1 - p_y` is computed as
    ``-expm1(log p_y)`` and :math:`b` is kept above the smallest normal number, as the kernels
    do, so saturated logits stay finite.
    """
    log_p = torch.log_softmax(logits, dim=1)
    log_p_y = log_p.gather(1, index)
    base = torch.expm1(log_p_y).neg()
    p_j = None
    if runner_up:  # torch.max gives the first maximal index: the lowest class among ties
        below = torch.where(log_p < log_p_y, log_p, torch.full_like(log_p, -torch.inf))
        p_j = below.max(dim=1, keepdim=True).values.exp()
        base = base + p_j
    p_y = log_p_y.exp()
    gamma, inverse = gamma_fn(p_y.detach(), None if p_j is None else p_j.detach())
    if inverse is not False:
        base = torch.where(torch.as_tensor(inverse), 1.0 + p_y, base)
    return -base.clamp_min(torch.finfo(logits.dtype).tiny).pow(gamma) * log_p_y
