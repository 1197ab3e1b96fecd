r"""Dual Focal Loss (DFL) and its sample-dependent variant DFL-SD.

Reference:
    Tao, Dong & Xu, *Dual Focal Loss for Calibration*, ICML 2023 (arXiv 2305.13665); official code
    github.com/Linwei94/DualFocalLoss.
"""

from __future__ import annotations

from torch import Tensor

from focalcal.losses._kernel import focal_family_loss
from focalcal.losses._reduce import check_inputs, compute_in_fp32
from focalcal.losses._soft import soft_focal_family_loss, uses_soft_path
from focalcal.losses.gamma import GammaLoss, GammaPolicy, gamma_functions, get_gamma_policy

__all__ = ["DualFocalLoss", "dual_focal_loss"]


@compute_in_fp32
def dual_focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float | str | GammaPolicy = 5.0,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Dual focal loss :math:`\ell_i = -(1 - p_{i,y_i} + p_{i,j_i})^{\gamma_i}\log p_{i,y_i}`.

    .. math:: \ell_i = -\bigl(1 - p_{i,y_i} + p_{i,j_i}\bigr)^{\gamma_i}\,\log p_{i,y_i},\qquad
              p_{i,j_i} = \max\{p_{ic} : p_{ic} < p_{i,y_i}\}\ (0\text{ if none})

    :math:`p_j` is the largest probability **strictly below** the target's, as in the paper and
    the official code: for a misclassified sample the predicted class is skipped, classes tied
    with :math:`p_y` are excluded, and when none is below (target smallest, all tied) DFL equals
    focal loss. The gradient flows through :math:`p_j` (to the lowest class index among tied
    candidates, like the official ``topk`` on CPU). The comparison is made on log-probabilities;
    it agrees with the official float32 probability comparison on every reference case, including
    ties and saturated (±1000) logits, and never confuses two distinct logits that underflow to the
    same probability 0 (their :math:`p_j` is 0 either way). The fused CPU kernel
    (``set_cpu_kernel("fused")``) finds the same :math:`p_j`; where distinct logits round to
    the same log-probability it sends the gradient to the class with the larger logit (the truly
    larger probability), and among equal logits to the lowest index, as the eager kernel does.

    For C = 2: DFL = :math:`2^\gamma` FL when :math:`p_y > 0.5`, and FL otherwise.

    Args:
        logits: (N, C) or (N, C, d1, ...); fp16/bf16 are computed in fp32.
        target: (N) or (N, d1, ...) integer class indices (or ``ignore_index``).
        gamma: a number ≥ 0 (default 5, the paper's γ for ResNet-50 on CIFAR-10/100; the paper
            tunes γ per model), or a γ policy: ``"flsd53"`` gives DFL-SD ("DualFLSD-53", official
            ``dual_focal_loss_sd``), where the table is applied to the detached **margin**
            :math:`p_y - p_j` (margin < 0.2 → 5, < 0.5 → 3, else 3).
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`
            (torch.nn.CrossEntropyLoss semantics; the official code only sums).
        label_smoothing: ε in [0, 1], as :func:`~focalcal.losses.focal_loss`.

    Soft targets: a floating (N, C, d1, ...) target :math:`q` gives
    :math:`-\sum_c q_c (1 - p_c + p_{j(c)})^{\gamma_c}\log p_c` with :math:`p_{j(c)}` the largest
    probability strictly below :math:`p_c` (γ from the margin :math:`p_c - p_{j(c)}` for DFL-SD).
    For a one-hot :math:`q = e_y` only :math:`c = y` remains and :math:`p_{j(y)} = p_j`, so it is
    exactly the loss above; every class is pushed by its own runner-up. See
    :mod:`focalcal.losses._soft` (eager path, not the fused CPU kernel).

    Returns:
        A scalar, or the per-item losses (shape of ``target``) for ``reduction="none"``.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 1.0, 0.0]], requires_grad=True)
        >>> loss = dual_focal_loss(logits, torch.tensor([1]), gamma=2.0)
        >>> round(loss.item(), 6)  # p_j = p_3 = 0.0900, not the predicted class's 0.665
        1.005785
        >>> loss.backward()
    """
    gamma_fn, gamma_table = gamma_functions(get_gamma_policy(gamma), margin=True)
    if uses_soft_path(target, label_smoothing):
        return soft_focal_family_loss(
            logits, target, gamma_fn, runner_up=True, weight=weight, ignore_index=ignore_index,
            reduction=reduction, label_smoothing=label_smoothing, validate=validate,
        )  # fmt: skip
    logits, target, weight = check_inputs(logits, target, weight, ignore_index, reduction, validate)
    return focal_family_loss(
        logits,
        target,
        weight,
        ignore_index,
        reduction,
        gamma_fn,
        runner_up=True,
        gamma_table=gamma_table,
    )


class DualFocalLoss(GammaLoss):
    r"""Dual focal loss module, :math:`-(1 - p_y + p_j)^{\gamma}\log p_y`; see :func:`dual_focal_loss`.

    Default γ = 5; ``DualFocalLoss("flsd53")`` is DFL-SD (γ from the margin :math:`p_y - p_j`).

    Shape:
        - logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...).
        - output: scalar, or the shape of ``target`` with ``reduction="none"``.

    Example:
        >>> import torch
        >>> criterion = DualFocalLoss(gamma=5.0)
        >>> logits = torch.randn(8, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (8,))).backward()
    """

    default_gamma = 5.0

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dual_focal_loss(
            logits, target, self.gamma, label_smoothing=self.label_smoothing, **self._common()
        )
