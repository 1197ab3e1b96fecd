r"""Non-parametric one-vs-rest calibrators: histogram binning and isotonic regression.

Each class c gets its own monotone map :math:`g_c` from the softmax probability :math:`p_c` to the
frequency of ``label == c``, fitted on the fitting set; the calibrated rows are renormalised:

.. math:: \hat p_{ic} = \frac{g_c(p_{ic})}{\sum_k g_k(p_{ik})}

Calibrated probabilities are floored at 1e-12 before renormalising, so a row whose every class
maps to 0 becomes uniform instead of 0/0, and ``transform`` (log-probabilities) stays finite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._optional import require
from focalcal._validation import check_choice, check_n_bins
from focalcal.calibration._base import ProbabilityCalibrator, compute_dtype
from focalcal.metrics.binning import assign_bins, bin_sums, equal_mass_edges, equal_width_edges

__all__ = ["HistogramBinning", "IsotonicCalibration"]


class _OneVsRest(ProbabilityCalibrator):
    """Shared plumbing: softmax probabilities and one-hot targets in, renormalised rows out."""

    @staticmethod
    def _probabilities(z: Tensor) -> Tensor:
        return torch.softmax(z.to(compute_dtype(z.device)), dim=1)

    def _fit(self, z: Tensor, y: Tensor) -> None:
        self._fit_one_vs_rest(self._probabilities(z), F.one_hot(y, z.shape[1]))

    def _predict_proba(self, z: Tensor) -> Tensor:
        calibrated = self._map_one_vs_rest(self._probabilities(z)).clamp_min(self._PROB_FLOOR)
        return calibrated / calibrated.sum(dim=1, keepdim=True)

    def _fit_one_vs_rest(self, probs: Tensor, onehot: Tensor) -> None:
        raise NotImplementedError

    def _map_one_vs_rest(self, probs: Tensor) -> Tensor:
        raise NotImplementedError


class HistogramBinning(_OneVsRest):
    r"""One-vs-rest histogram binning (Zadrozny & Elkan 2001), renormalised.

    For class c, the probabilities :math:`p_c` of the fitting set are binned (``(lo, hi]`` bins of
    :mod:`focalcal.metrics.binning`) and each bin maps to the fraction of its samples with
    ``label == c``:

    .. math:: g_c(p) = \frac{\sum_{i \in B_b} 1[y_i = c]}{|B_b|},\qquad p \in B_b

    An empty bin maps to its centre.

    Args:
        n_bins: number of bins per class.
        strategy: ``"uniform"`` (equal-width bins on [0, 1]) or ``"quantile"`` (equal-mass bins of
            each class's fitting probabilities).

    Fitted attributes: ``bin_edges_`` (C, n_bins + 1), ``bin_values_`` (C, n_bins),
    ``bin_counts_`` (C, n_bins), ``n_classes_``.

    Shapes: logits (N, C) → probabilities (N, C); numpy or torch in, same kind out.

    Reference: Zadrozny & Elkan, ICML 2001; Guo et al., ICML 2017 (multiclass extension).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> logits = 3 * torch.randn(2000, 3, generator=g)
        >>> labels = (logits / 3 + torch.randn(2000, 3, generator=g)).argmax(1)
        >>> hb = HistogramBinning(n_bins=10).fit(logits, labels)
        >>> hb.bin_values_.shape, hb.predict_proba(logits).sum(1).allclose(torch.ones(2000))
        (torch.Size([3, 10]), True)
    """

    def __init__(self, n_bins: int = 15, *, strategy: str = "uniform") -> None:
        self.n_bins = n_bins
        self.strategy = strategy

    def _fit_one_vs_rest(self, probs: Tensor, onehot: Tensor) -> None:
        n_bins = check_n_bins(self.n_bins)
        check_choice(self.strategy, "strategy", ("uniform", "quantile"))
        k = probs.shape[1]
        if self.strategy == "uniform":
            edges = equal_width_edges(n_bins, dtype=probs.dtype, device=probs.device)
            edges = edges.expand(k, -1)
        else:
            edges = torch.stack([equal_mass_edges(probs[:, c], n_bins) for c in range(k)])
            edges = edges.to(probs.dtype)
        sums = bin_sums(self._assign(probs, edges), probs, onehot, n_bins)
        centres = 0.5 * (edges[:, :-1] + edges[:, 1:])
        frequency = sums.acc_sum / sums.count.clamp_min(1)
        self.bin_edges_ = edges.contiguous()
        self.bin_counts_ = sums.count
        self.bin_values_ = torch.where(sums.count > 0, frequency, centres)

    @staticmethod
    def _assign(probs: Tensor, edges: Tensor) -> Tensor:
        """(N, C) bin index of each class probability under that class's edges (C, B + 1)."""
        if bool((edges == edges[:1]).all()):  # shared edges: one vectorised call
            return assign_bins(probs, edges[0])
        return torch.stack([assign_bins(probs[:, c], edges[c]) for c in range(probs.shape[1])], 1)

    def _map_one_vs_rest(self, probs: Tensor) -> Tensor:
        edges = self.bin_edges_.to(device=probs.device, dtype=probs.dtype)
        values = self.bin_values_.to(device=probs.device, dtype=probs.dtype)
        return values.T.gather(0, self._assign(probs, edges))  # values.T: (B, C)


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation like ``numpy.interp`` (constant beyond the ends)."""
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    right = torch.searchsorted(xp, x.contiguous()).clamp_(1, xp.numel() - 1)
    left = right - 1
    x0, x1, y0, y1 = xp[left], xp[right], fp[left], fp[right]
    width = x1 - x0
    t = torch.where(width > 0, (x - x0) / width.clamp_min(torch.finfo(x.dtype).tiny), 0).clamp_(
        0, 1
    )
    return y0 + t * (y1 - y0)


class IsotonicCalibration(_OneVsRest):
    r"""One-vs-rest isotonic regression (Zadrozny & Elkan 2002), renormalised.

    For each class c, :math:`g_c` is the non-decreasing step-linear function minimising
    :math:`\sum_i (1[y_i = c] - g_c(p_{ic}))^2`, fitted by scikit-learn's ``IsotonicRegression``
    (``out_of_bounds="clip"``, values in [0, 1]). The fitted breakpoints are kept as tensors, so
    ``transform`` runs in torch on any device.

    Needs scikit-learn at fit time (``pip install "focalcal[calibration]"``).

    Fitted attributes: ``thresholds_`` (list of C pairs ``(x, y)`` of 1-D tensors), ``n_classes_``.

    Reference: Zadrozny & Elkan, KDD 2002; Guo et al., ICML 2017.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> logits = 3 * torch.randn(2000, 3, generator=g)
        >>> labels = (logits / 3 + torch.randn(2000, 3, generator=g)).argmax(1)
        >>> iso = IsotonicCalibration().fit(logits, labels)
        >>> iso.predict_proba(logits).sum(1).allclose(torch.ones(2000))
        True
    """

    def __init__(self) -> None:
        pass

    def _fit_one_vs_rest(self, probs: Tensor, onehot: Tensor) -> None:
        isotonic = require("sklearn.isotonic", "calibration")
        p = probs.detach().cpu().double().numpy()
        t = onehot.detach().cpu().double().numpy()
        thresholds = []
        for c in range(p.shape[1]):
            reg = isotonic.IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            reg.fit(p[:, c], t[:, c])
            thresholds.append(
                (
                    torch.as_tensor(reg.X_thresholds_, device=probs.device),
                    torch.as_tensor(reg.y_thresholds_, device=probs.device),
                )
            )
        self.thresholds_ = thresholds

    def _map_one_vs_rest(self, probs: Tensor) -> Tensor:
        columns = []
        for c, (xp, fp) in enumerate(self.thresholds_):
            xp = xp.to(device=probs.device, dtype=probs.dtype)
            fp = fp.to(device=probs.device, dtype=probs.dtype)
            columns.append(_interp(probs[:, c], xp, fp))
        return torch.stack(columns, dim=1)
