r"""AdaFocal (calibration-aware adaptive focal loss) and AdaDualFocal.

References:
    Ghosh, Schaaf & Gormley, *AdaFocal: Calibration-aware Adaptive Focal Loss*, NeurIPS 2022
    (official code github.com/3mcloud/adafocal).
    Tao, Dong & Xu, *Dual Focal Loss for Calibration*, ICML 2023 (AdaDualFocal in
    github.com/Linwei94/DualFocalLoss).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from focalcal._validation import (
    as_tensor,
    check_bool,
    check_choice,
    check_n_bins,
    check_positive,
    check_probabilities,
    check_real,
    check_targets,
)
from focalcal.losses._kernel import GammaTable, focal_family_loss
from focalcal.losses._reduce import WeightedLoss, check_inputs, compute_in_fp32
from focalcal.losses._soft import check_label_smoothing, soft_focal_family_loss, uses_soft_path
from focalcal.metrics.binning import (
    assign_bins,
    bin_sums,
    edges_in_dtype,
    equal_mass_edges,
    equal_width_edges,
)

__all__ = ["AdaDualFocalLoss", "AdaFocalLoss", "adafocal_gamma_update"]

VARIANTS = ("official", "dfl_repo")


def adafocal_gamma_update(
    gamma: Tensor,
    gap: Tensor,
    *,
    lam: float = 1.0,
    switch_threshold: float = 0.2,
    gamma_min: float = -2.0,
    gamma_max: float = 20.0,
    signed: bool = True,
) -> Tensor:
    r"""One AdaFocal update of the per-bin γ from the signed calibration gaps.

    ``signed=True`` (official AdaFocal, Ghosh et al. 2022), with :math:`E_b = \bar{r}_b - a_b`
    (mean confidence minus accuracy of validation bin b):

    .. math:: \gamma'_b = \gamma_b\, e^{\operatorname{sign}^*(\gamma_b)\,\lambda E_b},\quad
              \operatorname{sign}^*(\gamma) = +1 \text{ if } \gamma > 0 \text{ else } -1

    then if :math:`|\gamma'_b| < S_{th}` switch focal ↔ inverse focal: :math:`\gamma'_b = -S_{th}`
    when :math:`\gamma'_b > 0`, else :math:`+S_{th}`; finally clip to
    :math:`[\gamma_{min}, \gamma_{max}]`.

    ``signed=False`` is the DFL repository's rule :math:`\gamma_b \leftarrow
    \min(\gamma_b e^{\lambda E_b}, \gamma_{max})` (no switch, no :math:`\gamma_{min}`).

    Example:
        >>> adafocal_gamma_update(torch.tensor([1.0, 1.0]), torch.tensor([0.05, -2.0]))
        tensor([ 1.0513, -0.2000])
    """
    if not check_bool(signed, "signed"):
        return (gamma * torch.exp(lam * gap)).clamp(max=gamma_max)
    new = torch.where(gamma > 0, gamma * torch.exp(lam * gap), gamma * torch.exp(-lam * gap))
    switched = torch.where(new > 0, -switch_threshold, switch_threshold).to(new.dtype)
    new = torch.where(new.abs() < switch_threshold, switched, new)
    return new.clamp(gamma_min, gamma_max)


def _calibration_gaps(confidence: Tensor, correct: Tensor, n_bins: int) -> tuple[Tensor, Tensor]:
    r"""Equal-mass bin edges of ``confidence`` and each bin's gap :math:`E_b = \bar r_b - a_b`.

    Uses the one binning primitive (:func:`~focalcal.metrics.binning.equal_mass_edges`,
    ``assign_bins``, ``bin_sums``); empty bins have gap 0. Unlike the official AdaECE routine,
    samples equal to the minimum confidence are kept (in bin 0) instead of silently dropped.

    Returns:
        ``(edges, gaps)`` of shapes (B + 1,) and (B,), float64.
    """
    edges = equal_mass_edges(confidence, n_bins)
    sums = bin_sums(assign_bins(confidence, edges), confidence, correct, n_bins)
    gaps = (sums.conf_sum - sums.acc_sum) / sums.count.clamp_min(1.0)
    return edges, gaps


class AdaFocalLoss(WeightedLoss):
    r"""AdaFocal: focal loss with a per-bin γ adapted every epoch from validation calibration.

    .. math:: \ell_i = \begin{cases} -(1 - p_{i,y_i})^{\gamma_b}\log p_{i,y_i} & \gamma_b \ge 0
              \text{ (focal)}\\ -(1 + p_{i,y_i})^{|\gamma_b|}\log p_{i,y_i} & \gamma_b < 0
              \text{ (inverse focal)}\end{cases},\qquad b = \text{bin of } p_{i,y_i}

    State (registered buffers, saved in ``state_dict``): ``bin_edges`` (B + 1,) and
    ``bin_gammas`` (B,); initially B = 15 equal-width bins and γ₀ = 1 everywhere (= FL(γ = 1)).
    Call :meth:`update` once per epoch with the validation probabilities: it builds B equal-mass
    bins on the max-softmax confidence, computes each bin's gap (mean confidence − accuracy),
    updates γ with :func:`adafocal_gamma_update` and replaces the edges. The per-sample bin is
    looked up with the **target** probability :math:`p_y` (as in the official code), detached.

    Variants:
        ``"official"`` (default): the 3mcloud/adafocal code: signed γ, focal ↔ inverse-focal
        switch at :math:`S_{th}`, γ clipped to :math:`[\gamma_{min}, \gamma_{max}]`.
        ``"dfl_repo"``: the DFL repository's AdaFocal: no sign handling,
        :math:`\gamma \leftarrow \min(\gamma e^{\lambda E}, \gamma_{max})`.

    Deviations from the official code: bins are ``(lo, hi]`` (focalcal's binning convention;
    official: ``[lo, hi)``), which only matters for values exactly on an edge; the validation bins
    keep the minimum-confidence samples; duplicated edges are fine (the DFL repo exits with status 0).

    Args:
        n_bins: number of bins B (15).
        gamma_init: initial γ of every bin (1).
        lam: λ, the update step (1).
        switch_threshold: :math:`S_{th}` (0.2).
        gamma_min, gamma_max: clip range (−2, 20).
        variant: ``"official"`` or ``"dfl_repo"``.
        weight, ignore_index, reduction, validate: as :func:`~focalcal.losses.focal_loss`
            (official reduction: ``"sum"``).
        label_smoothing: ε in [0, 1], as :func:`~focalcal.losses.focal_loss`.

    Soft targets (floating (N, C, ...) probabilities :math:`q`) give
    :math:`-\sum_c q_c b_c^{\gamma_c}\log p_c` with :math:`\gamma_c` the γ of the bin of
    :math:`p_c` (see :mod:`focalcal.losses._soft`); one-hot :math:`q` is the hard loss.

    Example:
        >>> import torch
        >>> criterion = AdaFocalLoss()
        >>> logits = torch.randn(32, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (32,))).backward()
        >>> val_probs = torch.softmax(torch.randn(200, 10) * 3, dim=1)
        >>> gaps = criterion.update(val_probs, torch.randint(0, 10, (200,)))  # once per epoch
        >>> criterion.bin_gammas.shape
        torch.Size([15])
    """

    bin_edges: Tensor
    bin_gammas: Tensor
    _signed_default = True

    def __init__(
        self,
        n_bins: int = 15,
        gamma_init: float = 1.0,
        lam: float = 1.0,
        switch_threshold: float = 0.2,
        gamma_min: float = -2.0,
        gamma_max: float = 20.0,
        variant: str = "official",
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.n_bins = check_n_bins(n_bins)
        self.variant = check_choice(variant, "variant", VARIANTS)
        self.lam = check_positive(lam, "lam", allow_zero=True)
        self.switch_threshold = check_positive(
            switch_threshold, "switch_threshold", allow_zero=True
        )
        self.gamma_min = check_real(gamma_min, "gamma_min")
        self.gamma_max = check_positive(gamma_max, "gamma_max", allow_zero=True)
        if self.gamma_min > self.gamma_max:
            raise ValueError(
                f"gamma_min: expected a finite number <= gamma_max={self.gamma_max}, "
                f"got {gamma_min!r}"
            )
        gamma_init = check_real(gamma_init, "gamma_init")
        if not self.signed and gamma_init < 0:
            raise ValueError(
                f"gamma_init: expected gamma_init >= 0 for variant {variant!r}, got {gamma_init}"
            )
        self.register_buffer("bin_edges", equal_width_edges(self.n_bins, dtype=torch.float64))
        self.register_buffer(
            "bin_gammas", torch.full((self.n_bins,), gamma_init, dtype=torch.float64)
        )

    @property
    def signed(self) -> bool:
        """Whether negative γ means inverse focal (official AdaFocal)."""
        return self.variant == "official"

    def set_bins(self, edges: Any, gammas: Any) -> None:
        """Set the bin edges (B + 1, increasing) and per-bin γ (B,), e.g. from an official log."""
        e, _ = as_tensor(edges, "edges", dtype=torch.float64)
        g, _ = as_tensor(gammas, "gammas", dtype=torch.float64)
        if e.ndim != 1 or e.numel() < 2 or g.shape != (e.numel() - 1,):
            raise ValueError(
                f"edges, gammas: expected shapes (B + 1,) and (B,), got {tuple(e.shape)} and "
                f"{tuple(g.shape)}"
            )
        if bool((e[1:] < e[:-1]).any()) or not bool(
            torch.isfinite(e).all() & torch.isfinite(g).all()
        ):
            raise ValueError(f"edges: expected finite, non-decreasing edges, got {e.tolist()}")
        if not self.signed and bool((g < 0).any()):
            raise ValueError(
                f"gammas: expected values >= 0 for variant {self.variant!r}, got {g.tolist()}"
            )
        self.n_bins = g.numel()
        self.bin_edges = e.to(self.bin_edges.device)
        self.bin_gammas = g.to(self.bin_gammas.device)

    def _lookup(self, reference: Tensor) -> Tensor:
        """γ of the bin of each (detached) reference value, in the reference's dtype."""
        edges = self.bin_edges.to(reference.device)
        bins = assign_bins(reference.detach(), edges)
        return self.bin_gammas.to(device=reference.device, dtype=reference.dtype)[bins]

    _runner_up = False
    _table_cache: tuple[tuple, GammaTable] | None = None

    def gamma_table(self, dtype: torch.dtype) -> GammaTable:
        r"""The per-bin γ as a step function, which the fused CPU kernel evaluates itself.

        Bin b is :math:`(e_b, e_{b+1}]` of the reference (p_y, or the margin for AdaDualFocal) in
        ``dtype``, with the edges rounded to ``dtype`` as :func:`assign_bins` does; so
        :math:`v \le e` becomes :math:`v < \mathrm{nextafter}(e, +\infty)`, exactly. Cached until
        the bins change (``set_bins``, ``update``, ``load_state_dict``, ``to``).
        """
        edges, gammas = self.bin_edges, self.bin_gammas
        key = (dtype, id(edges), edges._version, id(gammas), gammas._version)
        if self._table_cache is None or self._table_cache[0] != key:
            inner = edges_in_dtype(edges[1:-1].cpu(), dtype)
            upper = torch.nextafter(inner, torch.full_like(inner, torch.inf)).tolist()
            values = gammas.tolist()
            steps = tuple(zip(reversed(upper), reversed(values[:-1]), strict=True))
            table = GammaTable(steps, values[-1], margin=self._runner_up, signed=self.signed)
            self._table_cache = (key, table)
        return self._table_cache[1]

    def _gamma(self, p_y: Tensor, p_j: Tensor | None) -> tuple[Tensor, Tensor | bool]:
        """(γ ≥ 0, inverse-focal flag) of each item from its bin (looked up with p_y)."""
        gamma = self._lookup(p_y)
        if not self.signed:
            return gamma, False
        return gamma.abs(), gamma < 0

    @compute_in_fp32
    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        if uses_soft_path(target, self.label_smoothing):
            return soft_focal_family_loss(
                logits, target, self._gamma, runner_up=self._runner_up,
                label_smoothing=self.label_smoothing, **self._common(),
            )  # fmt: skip
        logits, target, weight = check_inputs(logits, target, **self._common())
        return focal_family_loss(
            logits,
            target,
            weight,
            self.ignore_index,
            self.reduction,
            self._gamma,
            runner_up=self._runner_up,
            gamma_table=self.gamma_table,
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self._loss(logits, target)

    @torch.no_grad()
    def update(self, val_probs: Any, val_labels: Any, *, from_logits: bool = False) -> Tensor:
        """Adapt γ per bin from validation predictions; call once per epoch.

        Args:
            val_probs: (N, C) validation probabilities (or logits with ``from_logits=True``),
                tensor or numpy.
            val_labels: (N,) integer labels.
            from_logits: apply softmax first.

        Returns:
            The per-bin calibration gaps (B,) used for the update.
        """
        probs, _ = as_tensor(val_probs, "val_probs")
        labels, _ = as_tensor(val_labels, "val_labels")
        if not probs.is_floating_point() or probs.ndim != 2 or probs.shape[0] == 0:
            raise ValueError(
                f"val_probs: expected a non-empty float (N, C) tensor, got dtype {probs.dtype}, "
                f"shape {tuple(probs.shape)}"
            )
        probs = probs.to(torch.float64)
        if check_bool(from_logits, "from_logits"):
            probs = torch.softmax(probs, dim=1)
        else:
            check_probabilities(probs, "val_probs")
        labels = check_targets(labels, probs.shape, probs.shape[1], "val_labels").to(probs.device)
        confidence, prediction = probs.max(dim=1)
        edges, gaps = _calibration_gaps(
            confidence, (prediction == labels).to(probs.dtype), self.n_bins
        )
        new_gammas = adafocal_gamma_update(
            self.bin_gammas.to(gaps.device),
            gaps,
            lam=self.lam,
            switch_threshold=self.switch_threshold,
            gamma_min=self.gamma_min,
            gamma_max=self.gamma_max,
            signed=self.signed,
        )
        self.bin_edges.copy_(edges.to(self.bin_edges))
        self.bin_gammas.copy_(new_gammas.to(self.bin_gammas))
        return gaps

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, variant={self.variant!r}, lam={self.lam:g}, {super().extra_repr()}"


class AdaDualFocalLoss(AdaFocalLoss):
    r"""AdaDualFocal: dual focal loss with a per-bin γ adapted from validation calibration.

    .. math:: \ell_i = -(1 - p_{i,y_i} + p_{i,j_i})^{\gamma_b}\log p_{i,y_i},\qquad
              b = \text{bin of the margin } p_{i,y_i} - p_{i,j_i}

    with :math:`p_j` as in :func:`~focalcal.losses.dual_focal_loss`. The update is the DFL
    repository's rule :math:`\gamma_b \leftarrow \min(\gamma_b e^{\lambda E_b}, \gamma_{max})` on
    the validation equal-mass confidence bins. **Deviation:** in the DFL repository γ is never
    updated for this loss (a substring test skips it, so its "AdaDualFocal" runs are DFL with a
    fixed γ); here :meth:`update` really adapts it. For the original behaviour use
    :class:`~focalcal.losses.DualFocalLoss`.

    Args:
        n_bins, lam, gamma_max: as :class:`AdaFocalLoss`; ``gamma_init`` ≥ 0 (default 5, the
            DFL paper's typical γ).

    Example:
        >>> import torch
        >>> criterion = AdaDualFocalLoss()
        >>> logits = torch.randn(32, 10, requires_grad=True)
        >>> criterion(logits, torch.randint(0, 10, (32,))).backward()
    """

    _runner_up = True

    def __init__(
        self,
        n_bins: int = 15,
        gamma_init: float = 5.0,
        lam: float = 1.0,
        gamma_max: float = 20.0,
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            n_bins,
            gamma_init,
            lam,
            gamma_min=0.0,
            gamma_max=gamma_max,
            variant="dfl_repo",
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            validate=validate,
            label_smoothing=label_smoothing,
        )

    def _gamma(self, p_y: Tensor, p_j: Tensor | None) -> tuple[Tensor, Tensor | bool]:
        """γ of each item from the bin of its margin p_y − p_j."""
        return self._lookup(p_y if p_j is None else p_y - p_j), False
