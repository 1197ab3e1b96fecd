r"""MbLS: margin-based label smoothing (cross-entropy plus a hinge on the logit gaps).

Reference:
    Liu, Ben Ayed, Galdran & Dolz, *The Devil is in the Margin: Margin-based Label Smoothing for
    Network Calibration*, CVPR 2022; official code ``by-liu/MbLS``
    (``calibrate/losses/logit_margin_l1.py``, class ``LogitMarginL1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import check_choice, check_int, check_positive
from focalcal.losses._reduce import WeightedLoss, compute_in_fp32, prepare, reduce_items

__all__ = ["MbLSLoss", "logit_margin_penalty", "mbls_loss", "scheduled_alpha"]

CONVENTIONS = ("paper", "official")
SCHEDULES = ("", "add", "multiply", "step")


def logit_margin_penalty(logits: Tensor, margin: float) -> Tensor:
    r"""Per item :math:`\sum_c \max(0, \max_k z_k - z_c - m)`, shape (N, d1, ...).

    The row maximum is not detached; with tied maxima its gradient goes to the first maximal
    index (``torch.max``), as in the official code. At a gap of exactly ``m`` the gradient is 0.
    """
    top = logits.max(dim=1, keepdim=True).values
    return torch.relu(top - logits - margin).sum(dim=1)


def scheduled_alpha(
    alpha: float,
    epoch: int,
    schedule: str = "",
    *,
    mu: float = 0.0,
    max_alpha: float = 100.0,
    step_size: int = 100,
) -> float:
    r"""The α in force during ``epoch``: the official ``schedule_alpha(e)`` applied for
    ``e = 0, ..., epoch - 1`` (the official trainer calls it after each epoch's validation).

    .. math:: \text{add: } \alpha \leftarrow \min(\alpha + \mu, \alpha_{max});\quad
              \text{multiply: } \alpha \leftarrow \min(\alpha\mu, \alpha_{max});\quad
              \text{step: the multiply update when } (e + 1) \bmod s = 0

    ``schedule=""`` keeps α constant. Replaying the updates makes the value a function of the
    epoch alone, so a resumed run gets the α an uninterrupted run would.

    Example:
        >>> scheduled_alpha(0.1, 3, "add", mu=0.05)
        0.25
        >>> scheduled_alpha(0.1, 4, "step", mu=2.0, step_size=2)
        0.4
    """
    for e in range(epoch):
        if schedule == "add":
            alpha = min(alpha + mu, max_alpha)
        elif schedule == "multiply" or (schedule == "step" and (e + 1) % step_size == 0):
            alpha = min(alpha * mu, max_alpha)
    return alpha


def _hyper_parameters(margin: float, alpha: float, convention: str) -> tuple[float, float, str]:
    """m ≥ 0, α ≥ 0 and a known convention, checked."""
    margin = check_positive(margin, "margin", allow_zero=True)
    alpha = check_positive(alpha, "alpha", allow_zero=True)
    return margin, alpha, check_choice(convention, "convention", CONVENTIONS)


@compute_in_fp32
def mbls_loss(
    logits: Tensor,
    target: Tensor,
    margin: float = 10.0,
    alpha: float = 0.1,
    *,
    convention: str = "paper",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""MbLS, :math:`\ell_i = \mathrm{CE}_i + \alpha\sum_c \max(0, \max_k z_{ik} - z_{ic} - m)`.

    .. math:: \ell_i = -\log p_{i,y_i} + \frac{\alpha}{K}\sum_{c=1}^{C}
              \max\bigl(0,\ \max_k z_{ik} - z_{ic} - m\bigr),\qquad
              K = \begin{cases}1 & \text{paper}\\ C & \text{official}\end{cases}

    ``convention="paper"`` (default) is the paper's per-sample sum over classes, so α keeps its
    meaning whatever the number of classes. The official code averages the hinge over all N·C
    entries, i.e. an effective weight α/C; ``convention="official"`` reproduces it (with
    ``reduction="mean"`` the value equals the official ``LogitMarginL1`` on any batch without
    ignored items). Items whose target is ``ignore_index`` contribute nothing to either term in
    both conventions: with its default ``ignore_index=-100`` the official code leaves them in the
    margin term and its divisor. Class weights multiply the whole per-item loss
    (:math:`w_{y_i}\ell_i`), and the weighted mean divides by :math:`\sum_i w_{y_i}`. With tied
    maxima the hinge's gradient on the maximum goes to the first maximal class, as in the
    official code.

    Args:
        logits: (N, C) or (N, C, d1, ...) unnormalised scores; fp16/bf16 are computed in fp32.
        target: (N) or (N, d1, ...) integer class indices (or ``ignore_index``).
        margin: m ≥ 0, the tolerated logit gap (10 in the paper).
        alpha: α ≥ 0, the weight of the hinge (0.1 in the paper).
        convention: ``"paper"`` or ``"official"`` (hinge divided by C).
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Returns:
        A scalar, or the per-item losses (shape of ``target``) for ``reduction="none"``.

    Example:
        >>> logits = torch.tensor([[12.0, 0.0, 1.0]], requires_grad=True)
        >>> loss = mbls_loss(logits, torch.tensor([0]), margin=10.0, alpha=0.1)
        >>> round(loss.item(), 6)  # CE + 0.1 * (12 - 0 - 10 + 12 - 1 - 10)
        0.300023
        >>> loss.backward()
    """
    margin, alpha, convention = _hyper_parameters(margin, alpha, convention)
    x = prepare(logits, target, weight, ignore_index, reduction, validate)
    ce = F.cross_entropy(x.logits, x.target, weight=x.weight, reduction="none") * x.valid
    scale = alpha / x.logits.shape[1] if convention == "official" else alpha
    items = ce + scale * logit_margin_penalty(x.logits, margin) * x.item_weight
    return reduce_items(items, x.item_weight, reduction)


class MbLSLoss(WeightedLoss):
    r"""MbLS module with the official α schedules; see :func:`mbls_loss`.

    ``set_epoch(e)`` (called by the trainer at the start of each epoch) sets α to
    :func:`scheduled_alpha` of the initial α; the paper's results use no schedule
    (``schedule=""``). ``"multiply"`` and ``"step"`` need ``mu > 0`` (the official default
    ``mu = 0`` would set α to 0 at the first update).

    Args:
        margin, alpha, convention: as :func:`mbls_loss`; ``alpha`` is the value at epoch 0.
        schedule: ``""`` (constant), ``"add"``, ``"multiply"`` or ``"step"``.
        mu: the increment (``add``) or factor (``multiply``, ``step``) of the schedule.
        max_alpha: the cap of the schedule.
        step_size: the period, in epochs, of ``"step"``.
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...).
        - output: scalar, or the shape of ``target`` with ``reduction="none"``.

    Example:
        >>> criterion = MbLSLoss(margin=10.0, alpha=0.1, schedule="add", mu=0.05)
        >>> criterion.set_epoch(3)
        >>> criterion.alpha
        0.25
        >>> logits = torch.randn(8, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (8,))).backward()
    """

    def __init__(
        self,
        margin: float = 10.0,
        alpha: float = 0.1,
        *,
        schedule: str = "",
        mu: float = 0.0,
        max_alpha: float = 100.0,
        step_size: int = 100,
        convention: str = "paper",
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.margin, self.initial_alpha, self.convention = _hyper_parameters(
            margin, alpha, convention
        )
        self.alpha = self.initial_alpha
        self.schedule = check_choice(schedule, "schedule", SCHEDULES)
        self.mu = check_positive(mu, "mu", allow_zero=True)
        if schedule in ("multiply", "step") and self.mu == 0:
            raise ValueError(
                f"mu: expected a factor > 0 for schedule={schedule!r} (mu = 0 sets alpha to 0 at "
                f"the first update), got {mu!r}"
            )
        self.max_alpha = check_positive(max_alpha, "max_alpha", allow_zero=True)
        self.step_size = check_int(step_size, "step_size", min_value=1)

    def set_epoch(self, epoch: int) -> None:
        """Set α to its scheduled value for ``epoch`` (a no-op without a schedule)."""
        epoch = check_int(epoch, "epoch", min_value=0)
        self.alpha = scheduled_alpha(
            self.initial_alpha,
            epoch,
            self.schedule,
            mu=self.mu,
            max_alpha=self.max_alpha,
            step_size=self.step_size,
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return mbls_loss(
            logits, target, self.margin, self.alpha, convention=self.convention, **self._common()
        )

    def extra_repr(self) -> str:
        schedule = f", schedule={self.schedule!r}, mu={self.mu:g}" if self.schedule else ""
        return (
            f"margin={self.margin:g}, alpha={self.alpha:g}{schedule}, "
            f"convention={self.convention!r}, {super().extra_repr()}"
        )
