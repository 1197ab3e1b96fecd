r"""Temperature scaling (Guo et al. 2017), exact and fast.

Three ways to choose T (``method``):

* ``"nll"`` (default): the exact minimiser of the mean NLL of
  ``softmax(z / T)``, by Newton's method in :math:`u = \log T` safeguarded by bisection on the sign of
  the gradient. With :math:`\beta = 1/T` the NLL is convex in :math:`\beta` and its derivatives need
  one softmax pass each:

  .. math::
      f(\beta) = \frac1N\sum_i \Big[\log\sum_c e^{\beta z_{ic}} - \beta z_{iy_i}\Big],\quad
      f'(\beta) = \frac1N\sum_i \big(\mathbb E_{p_i}[z_i] - z_{iy_i}\big),\quad
      f''(\beta) = \frac1N\sum_i \operatorname{Var}_{p_i}[z_i] \ge 0,

  and in :math:`u` (T > 0 by construction): :math:`F'(u) = -\beta f'(\beta)`,
  :math:`F''(u) = \beta^2 f''(\beta) + \beta f'(\beta)`. :math:`F` has a single minimum (a convex
  function of a monotone reparametrisation), so the sign of :math:`F'` brackets it.
* ``"grid_ece"`` and ``"grid_nll"``: the official search of Mukhoti et al. / Tao et al.:
  T = 0.1, 0.2, …, 10.0 accumulated as ``T += 0.1`` in floating point (so 0.30000000000000004,
  2.500000000000001, …), the validation ECE (15 bins by default) or NLL evaluated at every T, and
  the **first** minimum wins. Each temperature costs one ``exp`` pass over the row-max-shifted
  logits (no normalisation, no division of the probabilities, prediction computed once) and the
  ECE of all temperatures is binned in one batched call; the values differ from the official
  loop's only by float32 rounding.

The ECE is piecewise constant in T, so it has no gradient: it is only searched on the grid.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from focalcal._validation import check_choice, check_int, check_n_bins, check_positive
from focalcal.calibration._base import LogitCalibrator, compute_dtype
from focalcal.metrics._core import CONVENTIONS, binned_calibration_error, top_label_update

__all__ = ["TemperatureScaling", "official_temperature_grid"]

#: the valid ``method`` values: exact NLL minimisation, or the first minimum on the grid
METHODS = ("nll", "grid_ece", "grid_nll")
#: the spellings before ``method`` named the three modes, with their replacement
_RENAMED_METHODS = {"optimize": "'nll'", "grid": "'grid_ece' or 'grid_nll'"}


def official_temperature_grid(start: float = 0.1, step: float = 0.1, n: int = 100) -> list[float]:
    """The official grid: ``T = start; T += step`` repeated, with the float drift of the papers' code.

    Example:
        >>> grid = official_temperature_grid()
        >>> len(grid), grid[0], grid[2], grid[-1]
        (100, 0.1, 0.30000000000000004, 9.99999999999998)
    """
    grid, t = [], start
    for _ in range(n):
        grid.append(t)
        t += step
    return grid


class _NLLInLogT:
    r"""First two derivatives in ``u = log T`` of the mean NLL of ``softmax(z / T)``.

    The logits are shifted once per row to :math:`d = z - \max_c z_c \le 0` (softmax ignores a row
    constant), so :math:`e^{\beta d}` never overflows, its row sum is at least 1, and the softmax
    moments are dominated by entries near 0, which keeps float32 accurate. Each call (one softmax
    pass; :attr:`n_passes` counts them) is one ``exp`` and three row reductions (matrix products):
    :math:`s = \sum_c e^{\beta d_c}`, :math:`\mathbb E[d] = \sum_c e^{\beta d_c} d_c / s`,
    :math:`\mathbb E[d^2]`. Sums over samples are accumulated in float64.
    """

    def __init__(self, z: Tensor, y: Tensor) -> None:
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        self.accumulate = compute_dtype(z.device)
        self.d = _shift_to_row_max(z.to(dtype))
        self.d_squared = self.d.square()
        self.ones = torch.ones(z.shape[1], dtype=dtype, device=z.device)
        target = self.d.gather(1, y[:, None]).squeeze(1)
        self.mean_target = float(target.to(self.accumulate).mean())
        self.n_passes = 0

    def __call__(self, u: float) -> tuple[float, float]:
        """``(F'(u), F''(u))``."""
        self.n_passes += 1
        beta = math.exp(-u)
        weights = torch.mul(self.d, beta).exp_()  # unnormalised softmax, max entry 1
        norm = weights @ self.ones
        mean_d = torch.einsum("nc,nc->n", weights, self.d).div_(norm).to(self.accumulate)
        mean_d2 = torch.einsum("nc,nc->n", weights, self.d_squared).div_(norm)
        g_beta = float(mean_d.mean()) - self.mean_target
        h_beta = float((mean_d2.to(self.accumulate) - mean_d.square()).clamp_(min=0).mean())
        return -beta * g_beta, beta * beta * h_beta + beta * g_beta


def _shift_to_row_max(z: Tensor) -> Tensor:
    """``z - max_c z_c`` per row (≤ 0, exactly 0 at the arg-max): softmax is unchanged."""
    return (z - z.amax(dim=1, keepdim=True)).contiguous()


def _nll_limit(d: Tensor, y: Tensor) -> float | None:
    r"""``0.0`` / ``inf`` when the NLL has no finite minimiser in T, else ``None`` (no softmax).

    With ``d = z - max_c z_c``, :math:`f'(\beta)` increases from
    :math:`f'(0) = \frac1N\sum_i(\bar d_i - d_{iy_i})` to
    :math:`f'(\infty) = -\frac1N\sum_i d_{iy_i}`. If every label attains its row's maximum logit
    (:math:`d_{iy_i} = 0`), :math:`f' < 0` everywhere and the NLL falls as T → 0; if
    :math:`f'(0) \ge 0`, it falls as T → ∞.
    """
    target = d.gather(1, y[:, None]).squeeze(1)
    if bool((target == 0).all()):
        return 0.0
    if float((d.mean(dim=1) - target).double().mean()) >= 0:
        return math.inf
    return None


def _minimise_nll_log_t(
    objective: _NLLInLogT, lo: float, hi: float, tol: float, max_iter: int
) -> tuple[float, int]:
    """Safeguarded Newton on ``F'(u) = 0`` over ``[lo, hi]``; returns ``(u, n_iter)``.

    The bracket shrinks with the sign of ``F'`` at each iterate; a Newton step that leaves the
    bracket (or a non-positive curvature) is replaced by bisection. The bounds themselves are
    evaluated only when the iterates run into them.
    """
    bound_lo, bound_hi = lo, hi
    tried_lo = tried_hi = False  # whether the iterates have visited each bound
    u = min(max(0.0, lo), hi)
    for n_iter in range(1, max_iter + 1):
        grad, curv = objective(u)
        tried_lo, tried_hi = tried_lo or u == bound_lo, tried_hi or u == bound_hi
        if (grad >= 0 and u == bound_lo) or (grad <= 0 and u == bound_hi):
            return u, n_iter  # the minimum lies at or beyond this bound
        if grad > 0:
            hi = u
        elif grad < 0:
            lo = u
        else:
            return u, n_iter
        candidate = u - grad / curv if curv > 0 else (math.inf if grad < 0 else -math.inf)
        if candidate >= hi:  # try the upper bound itself once, else bisect the bracket
            candidate = bound_hi if hi == bound_hi and not tried_hi else 0.5 * (lo + hi)
        elif candidate <= lo:
            candidate = bound_lo if lo == bound_lo and not tried_lo else 0.5 * (lo + hi)
        if abs(candidate - u) <= tol or hi - lo <= tol:
            return candidate, n_iter
        u = candidate
    return u, max_iter


class TemperatureScaling(LogitCalibrator):
    r"""Divide logits by one scalar temperature T > 0 fitted on validation data.

    .. math:: \hat p = \operatorname{softmax}(z / T)

    Args:
        method: ``"nll"`` (exact minimiser of the mean negative log-likelihood), ``"grid_ece"``
            (first minimum over ``grid`` of the top-label ECE with ``n_bins`` equal-width bins:
            the papers' protocol) or ``"grid_nll"`` (first minimum of the NLL over ``grid``).
        grid: temperatures for the grid methods; ``None`` gives :func:`official_temperature_grid`
            (0.1, 0.2, …, 10.0 with the official float drift).
        n_bins: bins of the ECE of ``"grid_ece"`` (15 in the papers).
        convention: ECE bin edges: ``"default"`` (k / B rounded once) or ``"official"``
            (``torch.linspace(0, 1, B + 1)`` in float32, as the papers' ``ECELoss``).
        bounds: ``(T_min, T_max)`` of ``method="nll"``; when the NLL keeps decreasing up to a
            bound (e.g. a perfectly classified fitting set wants T → 0), T stops there with a
            ``RuntimeWarning``.
        tol: convergence tolerance on :math:`\log T` (relative tolerance on T); float32 logits
            stop at 8 ulp (~1e-6) after a last Newton step, i.e. T to ~1e-7 relative.
        max_iter: iteration limit of the Newton solve.

    Fitted attributes:
        ``temperature_`` (float), ``n_classes_`` (int), ``n_softmax_passes_`` (int, softmax
        passes over the fitting logits), ``n_iter_`` (int), ``grid_`` (list of T, grid methods)
        and ``grid_scores_`` (numpy array of the ECE or NLL at each grid T).

    Shapes: logits (N, C) float, labels (N,) int, or dense (N, C, d1, ...) with (N, d1, ...);
    numpy arrays or torch tensors on any device.
    ``transform`` returns logits / T and ``predict_proba`` their softmax, same kind as the input.

    Reference: Guo et al., *On Calibration of Modern Neural Networks*, ICML 2017; the grid search
    of Mukhoti et al. (NeurIPS 2020) and Tao et al. (ICML 2023).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> p = torch.distributions.Dirichlet(torch.full((10,), 0.3)).sample((4000,))
        >>> labels = torch.multinomial(p, 1, generator=g).squeeze(1)
        >>> logits = 2.5 * p.clamp_min(1e-12).log()  # over-confident by a factor 2.5
        >>> ts = TemperatureScaling().fit(logits, labels)
        >>> 2.2 < ts.temperature_ < 2.8, ts.n_softmax_passes_ <= 30
        (True, True)
        >>> ts.predict_proba(logits).sum(1).allclose(torch.ones(4000))
        True
        >>> paper = TemperatureScaling("grid_ece").fit(logits, labels)  # the papers' protocol
        >>> 2.0 <= paper.temperature_ <= 3.0
        True
    """

    def __init__(
        self,
        method: str = "nll",
        grid: Sequence[float] | None = None,
        *,
        n_bins: int = 15,
        convention: str = "default",
        bounds: tuple[float, float] = (1e-2, 1e2),
        tol: float = 1e-10,
        max_iter: int = 100,
    ) -> None:
        self.method = method
        self.grid = grid
        self.n_bins = n_bins
        self.convention = convention
        self.bounds = bounds
        self.tol = tol
        self.max_iter = max_iter

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if self.method in _RENAMED_METHODS:
            raise ValueError(
                f"method: {self.method!r} is no longer a method; use "
                f"{_RENAMED_METHODS[self.method]} (the method names the criterion; one of "
                f"{list(METHODS)})"
            )
        check_choice(self.method, "method", METHODS)
        check_choice(self.convention, "convention", CONVENTIONS)
        check_n_bins(self.n_bins)
        check_positive(self.tol, "tol")
        check_int(self.max_iter, "max_iter", min_value=1)
        if (
            not isinstance(self.bounds, (tuple, list))
            or len(self.bounds) != 2
            or not 0 < check_positive(self.bounds[0], "bounds[0]") < self.bounds[1]
        ):
            raise ValueError(
                f"bounds: expected (T_min, T_max) with 0 < T_min < T_max, got {self.bounds!r}"
            )
        check_positive(self.bounds[1], "bounds[1]")

    def _checked_grid(self) -> list[float]:
        if self.grid is None:
            return official_temperature_grid()
        values = np.asarray(self.grid, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(
                f"grid: expected a non-empty 1-D sequence of temperatures, got {self.grid!r}"
            )
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(f"grid: expected finite temperatures > 0, got {self.grid!r}")
        return [float(t) for t in values]

    def _fit(self, z: Tensor, y: Tensor) -> None:
        self._check_params()
        if self.method == "nll":
            self._fit_nll(z, y)
            return
        grid = self._checked_grid()
        scores = self._grid_scores(z, y, grid)
        best = int(np.argmin(scores))  # first minimum wins, as in the official loop
        self.grid_, self.grid_scores_ = grid, scores
        self.n_iter_ = self.n_softmax_passes_ = len(grid)
        self.temperature_ = grid[best]

    def _fit_nll(self, z: Tensor, y: Tensor) -> None:
        """The exact NLL minimiser in ``[T_min, T_max]``, warning when it stops at a bound."""
        objective = _NLLInLogT(z, y)
        lo, hi = (math.log(float(b)) for b in self.bounds)
        limit = _nll_limit(objective.d, y)
        if limit is None:
            # below ~8 ulp a Newton step is rounding noise; the last step is still applied
            tol = max(self.tol, 8 * torch.finfo(objective.d.dtype).eps)
            u, self.n_iter_ = _minimise_nll_log_t(objective, lo, hi, tol, self.max_iter)
        else:  # no finite minimiser: the NLL decreases all the way to T → 0 or T → ∞
            u, self.n_iter_ = (lo if limit == 0 else hi), 0
        self.n_softmax_passes_ = objective.n_passes
        self.temperature_ = math.exp(u)
        if u - lo <= 10 * self.tol or hi - u <= 10 * self.tol:
            warnings.warn(
                f"TemperatureScaling: the NLL keeps decreasing up to the bound T = "
                f"{self.temperature_:.4g} (bounds={self.bounds}); the fitting set may be "
                "perfectly classified (T → 0) or uninformative (T → ∞). Use more or held-out data.",
                RuntimeWarning,
                stacklevel=4,
            )

    def _grid_scores(self, z: Tensor, y: Tensor, grid: list[float]) -> np.ndarray:
        """The criterion at every grid temperature, one ``exp`` pass per temperature.

        With ``d = z - max_c z_c`` (computed once; the prediction does not depend on T), the
        top-label confidence at T is ``1 / sum_c exp(d_c / T)`` and the NLL is
        ``log sum_c exp(d_c / T) - d_y / T``; the ECE of all temperatures is then binned at once.
        """
        d = _shift_to_row_max(z if z.dtype == torch.float64 else z.float())
        ones = torch.ones(d.shape[1], dtype=d.dtype, device=d.device)
        row_sums = torch.empty(len(grid), d.shape[0], dtype=d.dtype, device=d.device)
        for g, t in enumerate(grid):
            torch.mv(torch.div(d, t).exp_(), ones, out=row_sums[g])
        if self.method == "grid_nll":
            target = d.gather(1, y[:, None]).squeeze(1).double()
            inverse_t = 1.0 / torch.tensor(grid, dtype=torch.float64, device=d.device)
            nll = row_sums.double().log_().mean(dim=1) - inverse_t * target.mean()
            return nll.cpu().numpy()
        confidence = row_sums.reciprocal_().T  # (N, G)
        correct = (z.argmax(dim=1) == y).unsqueeze(1).expand_as(confidence)
        sums = top_label_update(confidence, correct, self.n_bins, self.convention)  # (G, B)
        return binned_calibration_error(sums, z.shape[0], "l1").cpu().numpy()

    # ------------------------------------------------------------------ transforming
    def _transform(self, z: Tensor) -> Tensor:
        return z / self.temperature_
