r"""MMCE: maximum mean calibration error as a training penalty (unweighted and weighted).

Reference:
    Kumar, Sarawagi & Jain, *Trainable Calibration Measures for Neural Networks from Kernel Mean
    Embeddings*, ICML 2018; used as a baseline (λ = 2, weighted) by Mukhoti et al., NeurIPS 2020
    (official ``Losses/mmce.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import check_bool, check_choice, check_positive
from focalcal.losses._reduce import (
    WeightedLoss,
    compute_in_fp32,
    prepare,
    reduce_items,
)
from focalcal.losses._soft import reject_soft_target

__all__ = ["MMCELoss", "laplacian_kernel_matvec", "mmce_loss", "mmce_penalty"]

CONVENTIONS = ("kumar", "official")
_MIN_WIDTH = 1e-3
#: why MMCE takes hard labels only
_NO_SOFT_FORM = (
    "its kernel term compares confidence with correctness 1[argmax = y], which a distribution "
    "over classes does not define"
)


def laplacian_kernel_matvec(r: Tensor, v: Tensor, width: float) -> Tensor:
    r"""``K @ v`` for the Laplacian kernel :math:`K_{ij} = e^{-|r_i - r_j| / w}`, in O(N log N).

    In one dimension the kernel factorises on either side of :math:`r_i`:
    :math:`\sum_j K_{ij} v_j = e^{-r_i/w}\sum_{r_j<r_i} e^{r_j/w} v_j + e^{r_i/w}\sum_{r_j>r_i}
    e^{-r_j/w} v_j + \sum_{r_j=r_i} v_j`, i.e. prefix sums over the sorted :math:`r`. So a batch of
    131k pixels needs O(N) memory instead of an N×N kernel. Exactly tied values form a group with
    :math:`K = 1` and zero derivative, as ``|·|``'s gradient at 0 in the dense form. Computed in
    float64 with :math:`r` centred at 0.5 (:math:`r \in [0, 1]`, width ≥ 1e-3).

    Args:
        r: (N,) values (confidences), differentiable.
        v: (N, m) vectors, differentiable.
        width: kernel width :math:`w`.

    Returns:
        (N, m) float64 tensor.
    """
    r64 = r.to(torch.float64)
    sorted_r, order = torch.sort(r64)
    vs = v.to(torch.float64)[order]
    key = sorted_r.detach()
    first = torch.searchsorted(key, key, right=False)
    past = torch.searchsorted(key, key, right=True)
    scaled = (sorted_r - 0.5) / width
    up = scaled.exp().unsqueeze(1)
    down = scaled.neg().exp().unsqueeze(1)
    zero = vs.new_zeros(1, vs.shape[1])
    prefix_up = torch.cat([zero, torch.cumsum(vs * up, 0)])
    prefix_down = torch.cat([zero, torch.cumsum(vs * down, 0)])
    prefix = torch.cat([zero, torch.cumsum(vs, 0)])
    below = prefix_up[first]
    above = prefix_down[-1] - prefix_down[past]
    tied = prefix[past] - prefix[first]
    kv_sorted = down * below + up * above + tied
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return kv_sorted[inverse]


def _confidence_and_correct(log_p: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Flattened max-softmax confidence r (differentiable) and 1[argmax == y] (float64)."""
    log_r, pred = log_p.max(dim=1)
    return log_r.exp().reshape(-1), (pred == target).reshape(-1).to(torch.float64)


def mmce_penalty(
    log_p: Tensor,
    target: Tensor,
    valid: Tensor,
    *,
    weighted: bool = False,
    kernel_width: float = 0.4,
    convention: str = "kumar",
) -> Tensor:
    r"""The MMCE term of a batch (float64 scalar), from log-probabilities (N, C, ...).

    With :math:`r_i` the max-softmax confidence, :math:`c_i = \mathbb{1}[\hat y_i = y_i]` and
    :math:`K` the Laplacian kernel of width 0.4 over confidences:

    .. math:: \text{MMCE}_m = \frac{1}{N^2}\sum_{i,j}(c_i - r_i)(c_j - r_j)K(r_i, r_j)

    .. math:: \text{MMCE}_w = \sqrt{\frac{\sum_{cc}(1-r_i)(1-r_j)K}{m^2} +
              \frac{\sum_{ww} r_i r_j K}{n^2} - \frac{2\sum_{cw}(1-r_i) r_j K}{mn}}

    over correct (:math:`m`) and wrong (:math:`n`) items; 0 when either set is empty (including
    N = 1, where the official code crashes). The gradient flows through :math:`r` only.
    ``convention="official"`` reproduces the official weighted MMCE, which divides the pair means
    again by :math:`m^2, n^2, mn` (an effective :math:`1/m^4` normalisation); the unweighted term
    is the same in both conventions. Ignored items (``valid`` False) are left out.
    """
    r, correct = _confidence_and_correct(log_p, target)
    mask = valid.reshape(-1).to(torch.float64)
    if not weighted:
        d = (correct - r.to(torch.float64)) * mask
        quad = (d * laplacian_kernel_matvec(r, d.unsqueeze(1), kernel_width).squeeze(1)).sum()
        count = mask.sum()
        return quad / (count * count).clamp_min(1.0)
    r64 = r.to(torch.float64)
    n_correct = (correct * mask).sum()
    n_wrong = ((1.0 - correct) * mask).sum()
    u = correct * (1.0 - r64) * mask
    v = (1.0 - correct) * r64 * mask
    uv = torch.stack([u, v], dim=1)
    k_uv = laplacian_kernel_matvec(r, uv, kernel_width)
    s_cc = (u * k_uv[:, 0]).sum()
    s_ww = (v * k_uv[:, 1]).sum()
    s_cw = (u * k_uv[:, 1]).sum()
    mm, nn_, mn = n_correct * n_correct, n_wrong * n_wrong, n_correct * n_wrong
    if convention == "official":
        s_cc, s_ww, s_cw = (
            s_cc / mm.clamp_min(1.0),
            s_ww / nn_.clamp_min(1.0),
            s_cw / mn.clamp_min(1.0),
        )
    mmd = s_cc / (mm + 1e-5) + s_ww / (nn_ + 1e-5) - 2.0 * s_cw / (mn + 1e-5)
    both = ((n_correct > 0) & (n_wrong > 0)).to(torch.float64)
    return both * torch.sqrt(mmd.clamp_min(0.0) + 1e-10)


@compute_in_fp32
def mmce_loss(
    logits: Tensor,
    target: Tensor,
    lam: float = 2.0,
    *,
    weighted: bool = False,
    kernel_width: float = 0.4,
    convention: str = "kumar",
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
) -> Tensor:
    r"""Cross-entropy plus λ·MMCE: :math:`\frac{1}{W}\sum_i w_i\,\mathrm{CE}_i + \lambda\,\text{MMCE}`.

    .. math:: L_{mean} = \frac{\sum_i w_i\,\mathrm{CE}_i}{\sum_i w_i} + \lambda\,\text{MMCE},\qquad
              L_{sum} = \sum_i w_i\,\mathrm{CE}_i + \lambda \Bigl(\sum_i w_i\Bigr)\text{MMCE}

    ``reduction="mean"`` is the official ``mmce``/``mmce_weighted`` (CE mean + λ·MMCE);
    ``"sum"`` is what the official training loop optimises (the mean times the batch size);
    ``"none"`` returns :math:`w_i(\mathrm{CE}_i + \lambda\,\text{MMCE})` per item, whose sum is the
    ``"sum"`` value. MMCE is a batch-level term (see :func:`mmce_penalty`); the kernel sums use the
    sorted-prefix form of :func:`laplacian_kernel_matvec`, O(N log N), so segmentation-sized
    batches work. Class weights apply to the CE part and the scaling, not inside the kernel.

    Args:
        logits: (N, C) or (N, C, d1, ...); target: (N) or (N, d1, ...).
        lam: λ ≥ 0, the MMCE weight (2 in the focal-loss paper's vision runs).
        weighted: the weighted MMCE_w (the one the focal-loss paper trained) instead of MMCE_m.
        kernel_width: Laplacian kernel width (0.4 in the official code).
        convention: ``"kumar"`` (default: Kumar et al.'s normalisation) or ``"official"``
            (the focal-loss repository's double normalisation of MMCE_w).
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`.

    Example:
        >>> import torch
        >>> logits = torch.randn(16, 10, requires_grad=True)
        >>> mmce_loss(logits, torch.randint(0, 10, (16,)), lam=2.0, weighted=True).backward()
    """
    lam = check_positive(lam, "lam", allow_zero=True)
    kernel_width = check_positive(kernel_width, "kernel_width")
    if kernel_width < _MIN_WIDTH:
        raise ValueError(f"kernel_width: expected a width >= {_MIN_WIDTH}, got {kernel_width}")
    check_choice(convention, "convention", CONVENTIONS)
    reject_soft_target(target, "mmce_loss", _NO_SOFT_FORM)
    weighted = check_bool(weighted, "weighted")
    x = prepare(logits, target, weight, ignore_index, reduction, validate)
    log_p = torch.log_softmax(x.logits, dim=1)
    ce = F.nll_loss(log_p, x.target, weight=x.weight, reduction="none") * x.valid
    penalty = mmce_penalty(
        log_p,
        x.target,
        x.valid,
        weighted=weighted,
        kernel_width=kernel_width,
        convention=convention,
    ).to(ce.dtype)
    items = ce + (lam * penalty) * x.item_weight
    return reduce_items(items, x.item_weight, reduction)


class MMCELoss(WeightedLoss):
    r"""CE + λ·MMCE module (unweighted MMCE_m or weighted MMCE_w); see :func:`mmce_loss`.

    Example:
        >>> import torch
        >>> criterion = MMCELoss(lam=2.0, weighted=True)
        >>> logits = torch.randn(16, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (16,))).backward()
    """

    def __init__(
        self,
        lam: float = 2.0,
        *,
        weighted: bool = False,
        kernel_width: float = 0.4,
        convention: str = "kumar",
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.lam = check_positive(lam, "lam", allow_zero=True)
        self.weighted = check_bool(weighted, "weighted")
        self.kernel_width = check_positive(kernel_width, "kernel_width")
        self.convention = check_choice(convention, "convention", CONVENTIONS)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return mmce_loss(
            logits,
            target,
            self.lam,
            weighted=self.weighted,
            kernel_width=self.kernel_width,
            convention=self.convention,
            **self._common(),
        )

    def extra_repr(self) -> str:
        return (
            f"lam={self.lam:g}, weighted={self.weighted}, kernel_width={self.kernel_width:g}, "
            f"convention={self.convention!r}, {super().extra_repr()}"
        )
