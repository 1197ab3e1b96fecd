r"""Out-of-distribution detection: scores from logits and detection metrics.

Scores (N,) from logits (N, C):

====================== ===================================================== ================
score                  formula                                               large means
====================== ===================================================== ================
``entropy_score``      :math:`-\sum_c p_c \log p_c`                          OOD
``energy_score``       :math:`-T \log\sum_c e^{z_c / T}` (Liu et al. 2020)   OOD
``max_softmax_score``  :math:`\max_c p_c` (Hendrycks & Gimpel 2017)           in-distribution
``max_logit_score``    :math:`\max_c z_c` (Hendrycks et al. 2022)             in-distribution
====================== ===================================================== ================

Detection metrics treat **OOD as the positive class** (as the focal-loss papers do with the
entropy score). For scores where large means in-distribution pass ``ood_higher=False``.
Ties are handled exactly as :mod:`sklearn.metrics` does (AUROC counts a tie as one half).

Example:
    >>> import torch
    >>> ind = torch.tensor([[4.0, 0.0, 0.0], [3.0, 1.0, 0.0]])
    >>> ood = torch.tensor([[1.0, 1.0, 0.5], [0.2, 0.0, 0.1]])
    >>> float(ood_auroc(entropy_score(ind), entropy_score(ood)))
    1.0
    >>> float(ood_auroc(max_softmax_score(ind), max_softmax_score(ood), ood_higher=False))
    1.0
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from focalcal._validation import (
    as_tensor,
    check_bool,
    check_finite,
    check_logits,
    check_positive,
)

__all__ = [
    "energy_score",
    "entropy_score",
    "fpr_at_95_tpr",
    "max_logit_score",
    "max_softmax_score",
    "ood_aupr",
    "ood_auroc",
]


def _logits(logits: Any) -> Tensor:
    x, _ = as_tensor(logits, "logits")
    x = check_logits(x, "logits")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"logits: expected a non-empty (N, C) tensor, got {tuple(x.shape)}")
    return x


def max_softmax_score(logits: Any, *, temperature: float = 1.0) -> Tensor:
    r"""Maximum softmax probability :math:`\max_c \mathrm{softmax}(z/T)_c` (large = in-dist).

    Hendrycks & Gimpel 2017. ``logits`` (N, C) → scores (N,).

    Example:
        >>> max_softmax_score(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))
        tensor([0.5000, 0.8808])
    """
    t = check_positive(temperature, "temperature")
    return torch.softmax(_logits(logits) / t, dim=1).amax(dim=1)


def entropy_score(logits: Any, *, temperature: float = 1.0) -> Tensor:
    r"""Predictive entropy :math:`-\sum_c p_c\log p_c` of ``softmax(z/T)`` (large = OOD).

    ``logits`` (N, C) → scores (N,); the uniform prediction has the largest entropy, log C.

    Example:
        >>> entropy_score(torch.tensor([[0.0, 0.0], [9.0, 0.0]]))
        tensor([0.6931, 0.0012])
    """
    t = check_positive(temperature, "temperature")
    log_p = torch.log_softmax(_logits(logits) / t, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def energy_score(logits: Any, *, temperature: float = 1.0) -> Tensor:
    r"""Free energy :math:`-T\log\sum_c e^{z_c/T}` (large = OOD; Liu et al. 2020).

    ``logits`` (N, C) → scores (N,).

    Example:
        >>> energy_score(torch.tensor([[0.0, 0.0]]))  # -log 2
        tensor([-0.6931])
    """
    t = check_positive(temperature, "temperature")
    return -t * torch.logsumexp(_logits(logits) / t, dim=1)


def max_logit_score(logits: Any) -> Tensor:
    r"""Maximum logit :math:`\max_c z_c` (large = in-distribution; Hendrycks et al. 2022).

    ``logits`` (N, C) → scores (N,).

    Example:
        >>> max_logit_score(torch.tensor([[1.0, 3.0], [0.5, -1.0]]))
        tensor([3.0000, 0.5000])
    """
    return _logits(logits).amax(dim=1)


def _scores(x: Any, name: str) -> Tensor:
    t, _ = as_tensor(x, name)
    if not t.is_floating_point():
        t = t.double()
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D tensor of scores, got {tuple(t.shape)}")
    check_finite(t, name)
    return t.detach().to(torch.float64)


def _roc_counts(scores_in: Any, scores_out: Any, ood_higher: bool) -> tuple[Tensor, Tensor]:
    """Cumulative (true positives, false positives) at each distinct threshold, descending.

    OOD items are the positives; an item is flagged when its (sign-adjusted) score is at least
    the threshold.
    """
    sign = 1.0 if check_bool(ood_higher, "ood_higher") else -1.0
    s_in, s_out = _scores(scores_in, "scores_in"), _scores(scores_out, "scores_out")
    s_out = s_out.to(s_in.device)
    scores = torch.cat([s_out, s_in]) * sign
    positive = torch.cat(
        [torch.ones_like(s_out), torch.zeros_like(s_in)]
    )  # float64 so cumsums are exact for N < 2^53
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positive = scores[order], positive[order]
    tp = positive.cumsum(0)
    fp = (1 - positive).cumsum(0)
    last_of_group = torch.ones_like(scores, dtype=torch.bool)
    last_of_group[:-1] = scores[1:] != scores[:-1]
    return tp[last_of_group], fp[last_of_group]


def ood_auroc(scores_in: Any, scores_out: Any, *, ood_higher: bool = True) -> Tensor:
    r"""Area under the ROC curve for detecting OOD items (OOD = positive).

    .. math:: \mathrm{AUROC} = P(s_{\text{out}} > s_{\text{in}}) + \tfrac12 P(s_{\text{out}} = s_{\text{in}})

    Args:
        scores_in: (N_in,) scores of in-distribution items.
        scores_out: (N_out,) scores of OOD items.
        ood_higher: ``True`` when a larger score means "more OOD" (entropy, energy).

    Returns:
        float64 0-d tensor in [0, 1]; equals ``sklearn.metrics.roc_auc_score``.

    Example:
        >>> float(ood_auroc(torch.tensor([0.1, 0.4]), torch.tensor([0.4, 0.9])))
        0.875
    """
    tp, fp = _roc_counts(scores_in, scores_out, ood_higher)
    tpr = torch.cat([tp.new_zeros(1), tp / tp[-1]])
    fpr = torch.cat([fp.new_zeros(1), fp / fp[-1]])
    return torch.trapezoid(tpr, fpr)


def ood_aupr(scores_in: Any, scores_out: Any, *, ood_higher: bool = True) -> Tensor:
    r"""Area under the precision-recall curve (average precision) with OOD as the positive class.

    .. math:: \mathrm{AP} = \sum_k (R_k - R_{k-1})\,P_k

    over distinct thresholds, as ``sklearn.metrics.average_precision_score``.

    Example:
        >>> round(float(ood_aupr(torch.tensor([0.1, 0.5]), torch.tensor([0.4, 0.9]))), 4)
        0.8333
    """
    tp, fp = _roc_counts(scores_in, scores_out, ood_higher)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return (torch.diff(recall, prepend=recall.new_zeros(1)) * precision).sum()


def fpr_at_95_tpr(
    scores_in: Any, scores_out: Any, *, ood_higher: bool = True, tpr: float = 0.95
) -> Tensor:
    r"""False-positive rate (in-distribution items flagged as OOD) at the first threshold whose
    true-positive rate (OOD items flagged) reaches ``tpr`` (0.95).

    .. math:: \mathrm{FPR}@95 = \min\{\mathrm{FPR}(\tau) : \mathrm{TPR}(\tau) \ge 0.95\}

    Example:
        >>> float(fpr_at_95_tpr(torch.tensor([0.1, 0.5, 0.6]), torch.tensor([0.55, 0.9])))
        0.3333333333333333
    """
    level = check_positive(tpr, "tpr")
    if level > 1:
        raise ValueError(f"tpr: expected a number in (0, 1], got {tpr!r}")
    tp, fp = _roc_counts(scores_in, scores_out, ood_higher)
    reached = tp / tp[-1] >= level - 1e-12
    return fp[reached][0] / fp[-1]
