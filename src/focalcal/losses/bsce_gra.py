r"""BSCE-GRA: cross-entropy whose gradient is scaled by a detached Brier-type uncertainty.

Reference:
    Lin, Tao, Dong & Xu, *Uncertainty Weighted Gradients for Model Calibration*, CVPR 2025;
    official code ``Jinxu-Lin/BSCE-GRA`` (``Losses/brier_score.py``, classes ``BSCELossGra`` and
    ``BSCELoss``; ``Losses/temperature_bsce.py``, class ``TemperatureBSCELossGra``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import check_positive
from focalcal.losses._reduce import WeightedLoss, compute_in_fp32, prepare, reduce_items

__all__ = ["BSCEGRALoss", "bsce_gra_loss", "uncertainty_weight"]


def _hyper_parameters(gamma: float, norm: float, temperature: float) -> tuple[float, float, float]:
    """γ ≥ 0, p ≥ 1 and T > 0, checked."""
    gamma = check_positive(gamma, "gamma", allow_zero=True)
    norm = check_positive(norm, "norm")
    if norm < 1:
        raise ValueError(f"norm: expected p >= 1 (a p-norm), got {norm}")
    return gamma, norm, check_positive(temperature, "temperature")


def uncertainty_weight(log_q: Tensor, target: Tensor, norm: float, gamma: float) -> Tensor:
    r"""Per item :math:`\lVert \mathrm{onehot}(y) - q\rVert_p^{\gamma}`, shape (N, d1, ...).

    ``log_q`` (N, C, d1, ...) are log-probabilities; :math:`q_y - 1` is computed as
    ``expm1(log q_y)`` (no cancellation near :math:`q_y = 1`). For p = 1 the norm is
    :math:`2(1 - q_y)`; for p = 2 it is the square root of the Brier score. γ = 0 gives 1.
    """
    index = target.unsqueeze(1)
    residual = log_q.exp().scatter(1, index, torch.expm1(log_q.gather(1, index)))
    return torch.linalg.vector_norm(residual, ord=norm, dim=1).pow(gamma)


@compute_in_fp32
def bsce_gra_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 1.0,
    norm: float = 1.0,
    *,
    temperature: float = 1.0,
    detach: bool = True,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""BSCE-GRA, :math:`\ell_i = u_i\,\mathrm{CE}_i` with the constant
    :math:`u_i = \lVert \mathrm{onehot}(y_i) - \mathrm{softmax}(z_i/T)\rVert_p^{\gamma}`.

    .. math:: \ell_i = -\,\mathrm{sg}\bigl[\lVert e_{y_i} - \mathrm{softmax}(z_i / T)
              \rVert_p^{\gamma}\bigr]\,\log p_{i,y_i},\qquad
              \frac{\partial \ell_i}{\partial z_i} = u_i\,(p_i - e_{y_i})

    (sg: stop-gradient). The uncertainty scales the cross-entropy gradient instead of entering
    the loss as a differentiable factor (as focal loss's does). For p = 1,
    :math:`u = 2^{\gamma}(1 - q_y)^{\gamma}`: a focal loss whose factor is detached. γ = 0 is
    cross-entropy. ``temperature`` is the T of the official ``TemperatureBSCELossGra`` (it scales
    the weight only; the CE term uses T = 1); ``detach=False`` is the official ``BSCELoss``, the
    same value with the weight differentiated. The official losses return the sum over samples
    (``size_average=True``: the mean): use ``reduction="sum"`` to reproduce them. Unlike the
    official code (which crashes on CPU tensors), it runs on any device, and supports (N, C, d1,
    ...) input, ``weight`` (multiplying the whole per-item loss) and ``ignore_index``.

    Args:
        logits: (N, C) or (N, C, d1, ...); fp16/bf16 are computed in fp32.
        target: (N) or (N, d1, ...) integer class indices (or ``ignore_index``).
        gamma: γ ≥ 0, the exponent of the uncertainty (1 in the official ``train.py``).
        norm: p ≥ 1 of the p-norm (1 in the official ``train.py``; 2 gives the Brier score).
        temperature: T > 0 of the softmax inside the weight.
        detach: treat the weight as a constant (BSCE-GRA); False differentiates it (BSCE).
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Returns:
        A scalar, or the per-item losses (shape of ``target``) for ``reduction="none"``.

    Example:
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> loss = bsce_gra_loss(logits, torch.tensor([0]), gamma=1.0, norm=1.0)
        >>> round(loss.item(), 6)  # 2 (1 - p_0) * CE
        0.2729
        >>> loss.backward()
    """
    gamma, norm, temperature = _hyper_parameters(gamma, norm, temperature)
    x = prepare(logits, target, weight, ignore_index, reduction, validate)
    log_p = torch.log_softmax(x.logits, dim=1)
    log_q = log_p if temperature == 1.0 else torch.log_softmax(x.logits / temperature, dim=1)
    u = uncertainty_weight(log_q.detach() if detach else log_q, x.target, norm, gamma)
    ce = F.nll_loss(log_p, x.target, weight=x.weight, reduction="none") * x.valid
    return reduce_items(u * ce, x.item_weight, reduction)


class BSCEGRALoss(WeightedLoss):
    r"""BSCE-GRA module; see :func:`bsce_gra_loss`.

    ``BSCEGRALoss(gamma, norm)`` is the official ``BSCELossGra`` (with ``reduction="sum"``),
    ``temperature=T`` the official ``TemperatureBSCELossGra`` at a fixed T, ``detach=False`` the
    official ``BSCELoss``.

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...).
        - output: scalar, or the shape of ``target`` with ``reduction="none"``.

    Example:
        >>> criterion = BSCEGRALoss(gamma=4.0, norm=2.0)
        >>> logits = torch.randn(8, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (8,))).backward()
    """

    def __init__(
        self,
        gamma: float = 1.0,
        norm: float = 1.0,
        *,
        temperature: float = 1.0,
        detach: bool = True,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.gamma, self.norm, self.temperature = _hyper_parameters(gamma, norm, temperature)
        self.detach = bool(detach)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return bsce_gra_loss(
            logits,
            target,
            self.gamma,
            self.norm,
            temperature=self.temperature,
            detach=self.detach,
            **self._common(),
        )

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma:g}, norm={self.norm:g}, temperature={self.temperature:g}, "
            f"detach={self.detach}, {super().extra_repr()}"
        )
