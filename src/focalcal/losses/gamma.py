r"""γ policies for every γ-based loss (focal, dual focal, inverse focal).

A policy maps a detached reference probability (:math:`p_y` for focal loss, the margin
:math:`p_y - p_j` for dual focal loss) to the focusing parameter γ, per sample. No gradient flows
through γ, as in the official code (where γ came from ``.item()``).

- :class:`FixedGamma` — one γ for every sample (``gamma=3.0``).
- :class:`ThresholdGamma` — a thresholds table; ``"flsd53"``, ``"flsd52"`` and the SST variant
  ``"flsd53_sst"`` of Mukhoti et al. (2020) are instances.
- :class:`LambertWGamma` — the continuous γ(p) of the focal-loss paper's Lambert-W derivation,
  of which the FLSD-53 table is the rounding (γ(0.2) ≈ 4.85 → 5).
- :class:`ScheduledGamma` — γ by epoch (FLSc-531: 5, then 3 from epoch 100, then 1 from 250),
  advanced by ``set_epoch``.

:func:`get_gamma_policy` turns a number, a name (:data:`GAMMA_POLICIES`) or a policy into a
policy; :func:`gamma_functions` turns a policy into what the focal-family kernel evaluates, and
:class:`GammaLoss` is the base of the γ-based loss modules.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from focalcal._registry import Registry
from focalcal._validation import check_positive, check_real
from focalcal.losses._kernel import GammaFn, GammaTable, GammaTableFn
from focalcal.losses._reduce import WeightedLoss

__all__ = [
    "GAMMA_POLICIES",
    "FixedGamma",
    "GammaLoss",
    "GammaPolicy",
    "LambertWGamma",
    "ScheduledGamma",
    "ThresholdGamma",
    "focal_gamma_root",
    "get_gamma_policy",
    "lambertw_m1",
]


class GammaPolicy:
    """Base class: ``policy(p)`` gives γ for the detached reference probabilities ``p``.

    ``constant`` policies return a Python float (a scalar exponent, the fast path); others return
    a tensor shaped like ``p``. ``set_epoch`` is a no-op unless the policy is scheduled.
    """

    constant: bool = False

    def __call__(self, p: Tensor) -> Tensor | float:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Advance an epoch schedule (no-op for unscheduled policies)."""

    def steps(self) -> tuple[tuple[tuple[float, float], ...], float] | None:
        """The policy (at the current epoch) as a step function, or None if it is not one.

        ``(steps, default)``: γ is ``default``, replaced in turn by the γ of every
        ``(threshold, γ)`` step, largest threshold first, whose threshold p is below. The fused
        CPU kernel evaluates such policies itself; others are called from Python.
        """
        return None

    @property
    def min_gamma(self) -> float:
        """The smallest γ the policy can return (used to validate γ ≥ 0 where required)."""
        raise NotImplementedError

    @property
    def max_gamma(self) -> float:
        """The largest γ the policy can return (inf if unbounded; used where a large γ
        overflows, as in inverse focal loss)."""
        return math.inf


class FixedGamma(GammaPolicy):
    """The same γ for every sample.

    Example:
        >>> FixedGamma(2.0)(torch.tensor([0.1, 0.9]))
        2.0
    """

    constant = True

    def __init__(self, gamma: float) -> None:
        self.gamma = check_real(gamma, "gamma")

    def __call__(self, p: Tensor) -> float:
        return self.gamma

    def steps(self) -> tuple[tuple[tuple[float, float], ...], float]:
        return (), self.gamma

    @property
    def min_gamma(self) -> float:
        return self.gamma

    @property
    def max_gamma(self) -> float:
        return self.gamma

    def __repr__(self) -> str:
        return f"FixedGamma({self.gamma:g})"


class ThresholdGamma(GammaPolicy):
    r"""γ from a thresholds table: :math:`\gamma = g_i` for the first :math:`p < t_i`, else ``default``.

    .. math:: \gamma(p) = \begin{cases} g_1 & p < t_1 \\ g_2 & t_1 \le p < t_2 \\ \dots \\
              \text{default} & p \ge t_k \end{cases}

    FLSD-53 (Mukhoti et al., 2020) is ``ThresholdGamma((0.2, 0.5), (5, 3), default=3)``; FLSD-52
    has ``default=2``; the SST-Binary variant of the official NLP code uses thresholds
    (0.19, 0.5). Boundaries are exact: p = 0.2 gets 3, p = 0.19999 gets 5.

    Example:
        >>> ThresholdGamma((0.2, 0.5), (5.0, 3.0), default=3.0)(torch.tensor([0.1, 0.2, 0.7]))
        tensor([5., 3., 3.])
    """

    def __init__(
        self, thresholds: Sequence[float], gammas: Sequence[float], default: float
    ) -> None:
        thresholds = [float(t) for t in thresholds]
        gammas = [float(g) for g in gammas]
        if len(thresholds) != len(gammas) or not thresholds:
            raise ValueError(
                f"thresholds, gammas: expected two non-empty sequences of equal length, "
                f"got {len(thresholds)} thresholds and {len(gammas)} gammas"
            )
        if any(b <= a for a, b in itertools.pairwise(thresholds)):
            raise ValueError(f"thresholds: expected strictly increasing values, got {thresholds}")
        if not all(math.isfinite(v) for v in [*thresholds, *gammas, float(default)]):
            raise ValueError("thresholds, gammas, default: expected finite numbers")
        self.thresholds = tuple(thresholds)
        self.gammas = tuple(gammas)
        self.default = float(default)
        # the (threshold, γ) pairs that change anything, largest threshold first: a threshold
        # whose γ equals the one above it (FLSD-53's 0.5 → 3 = default) is skipped
        steps: list[tuple[float, float]] = []
        above = self.default
        for threshold, value in zip(reversed(self.thresholds), reversed(self.gammas), strict=True):
            if value != above:
                steps.append((threshold, value))
            above = value
        self._steps = tuple(steps)

    def __call__(self, p: Tensor) -> Tensor:
        # Select by arithmetic (bool comparisons and ``where`` are slow on CPU): below is exactly
        # 1 where p < t, else 0 (sign(t − p): a float difference is 0 only for equal operands),
        # and γ − γ·below + value·below is then exactly γ or value.
        gamma = torch.full_like(p, self.default)
        for threshold, value in self._steps:
            below = torch.rsub(p, threshold).sign_().clamp_min_(0.0)
            gamma.addcmul_(gamma, below, value=-1.0).add_(below, alpha=value)
        return gamma

    def steps(self) -> tuple[tuple[tuple[float, float], ...], float]:
        return self._steps, self.default

    @property
    def min_gamma(self) -> float:
        return min(*self.gammas, self.default)

    @property
    def max_gamma(self) -> float:
        return max(*self.gammas, self.default)

    def __repr__(self) -> str:
        return f"ThresholdGamma(thresholds={self.thresholds}, gammas={self.gammas}, default={self.default:g})"


def lambertw_m1(x: Tensor, iterations: int = 12) -> Tensor:
    r"""Lower branch :math:`W_{-1}(x)` of the Lambert W function for :math:`x \in [-1/e, 0)`.

    Solves :math:`w e^w = x` with :math:`w \le -1` by Halley's method from a series start (branch
    point) or an asymptotic start (near 0); fixed iterations, no device sync. Values outside
    :math:`[-1/e, 0)` give NaN.

    Example:
        >>> w = lambertw_m1(torch.tensor([-0.2], dtype=torch.float64))
        >>> torch.allclose(w * w.exp(), torch.tensor([-0.2], dtype=torch.float64))
        True
    """
    x = x.to(torch.float64)
    inside = (x >= -1.0 / math.e) & (x < 0)
    xs = torch.where(inside, x, torch.full_like(x, -0.1))
    # start: branch-point series for x near -1/e, asymptotic log series near 0.
    q = torch.sqrt((2.0 * (1.0 + math.e * xs)).clamp_min(0.0))
    w_branch = -1.0 - q - q * q / 3.0 - 11.0 / 72.0 * q**3
    l1 = torch.log(-xs)
    l2 = torch.log(-l1)
    w_asym = l1 - l2 + l2 / l1
    w = torch.where(xs < -0.25, w_branch, w_asym)
    for _ in range(iterations):
        ew = torch.exp(w)
        f = w * ew - xs
        wp1 = w + 1.0
        denom = ew * wp1 - (w + 2.0) * f / (2.0 * wp1)
        step = torch.where(denom.abs() > 0, f / denom, torch.zeros_like(f))
        w = torch.minimum(w - step, torch.full_like(w, -1.0))
    return torch.where(inside, w, torch.full_like(w, math.nan))


def focal_gamma_root(p: Tensor) -> Tensor:
    r"""The γ at which focal loss's gradient equals cross-entropy's at probability ``p``.

    With :math:`g(p, \gamma) = (1-p)^\gamma - \gamma\, p\,(1-p)^{\gamma-1}\log p` the ratio of the
    focal-loss to the cross-entropy gradient (Mukhoti et al., 2020, §4), the non-trivial root of
    :math:`g(p, \gamma) = 1` is

    .. math:: \gamma^*(p) = \frac{1-p}{p\log p} + \frac{W_{-1}(x)}{\log(1-p)},\qquad
              x = -\frac{\log(1-p)}{p\log p}\,(1-p)^{1 - \frac{1-p}{p\log p}}

    For samples with :math:`p_y > p`, γ ≥ γ*(p) makes the focal gradient smaller than CE's.
    γ*(p) decreases from +∞ (p → 0) to 0 (p = 0.5) and is 0 for p ≥ 0.5; γ*(0.2) ≈ 4.85, which the
    FLSD-53 table rounds to 5. Computed in float64.

    Example:
        >>> round(float(focal_gamma_root(torch.tensor(0.2))), 2)
        4.85
    """
    p64 = p.detach().to(torch.float64)
    interior = (p64 > 1e-4) & (p64 < 0.5 - 1e-9)
    ps = torch.where(interior, p64, torch.full_like(p64, 0.25))
    a = torch.log1p(-ps)
    b = ps * torch.log(ps)
    c = (1.0 - ps) / b
    x = -(a / b) * torch.exp(a * (1.0 - c))
    gamma = c + lambertw_m1(x.clamp(-1.0 / math.e, -1e-300)) / a
    gamma = torch.where(interior, gamma, torch.where(p64 <= 1e-4, math.inf, 0.0))
    return gamma.clamp_min(0.0)


class LambertWGamma(GammaPolicy):
    r"""Continuous sample-dependent γ: :math:`\gamma(p) = \mathrm{clip}(\gamma^*(p), \gamma_{min}, \gamma_{max})`.

    :math:`\gamma^*` is :func:`focal_gamma_root`. With the defaults (3, 5) this is the continuous
    form of FLSD-53: γ = 5 for p ≲ 0.198, decreasing to 3 at p ≈ 0.253, and 3 above.

    Example:
        >>> LambertWGamma()(torch.tensor([0.1, 0.22, 0.9]))
        tensor([5.0000, 4.0270, 3.0000])
    """

    def __init__(self, gamma_min: float = 3.0, gamma_max: float = 5.0) -> None:
        self.gamma_min = check_positive(gamma_min, "gamma_min", allow_zero=True)
        self.gamma_max = check_positive(gamma_max, "gamma_max", allow_zero=True)
        if self.gamma_max < self.gamma_min:
            raise ValueError(
                f"gamma_max: expected >= gamma_min={self.gamma_min}, got {self.gamma_max}"
            )

    def __call__(self, p: Tensor) -> Tensor:
        gamma = focal_gamma_root(p).clamp(self.gamma_min, self.gamma_max)
        return gamma.to(p.dtype)

    @property
    def min_gamma(self) -> float:
        return self.gamma_min

    @property
    def max_gamma(self) -> float:
        return self.gamma_max

    def __repr__(self) -> str:
        return f"LambertWGamma(gamma_min={self.gamma_min:g}, gamma_max={self.gamma_max:g})"


class ScheduledGamma(GammaPolicy):
    """γ by epoch: ``{0: 5, 100: 3, 250: 1}`` is FLSc-531 (Mukhoti et al., 2020).

    ``set_epoch(e)`` selects the value of the last milestone ``<= e``; the trainer calls it at the
    start of every epoch (through the loss's ``set_epoch``).

    Example:
        >>> policy = ScheduledGamma({0: 5.0, 100: 3.0, 250: 1.0})
        >>> policy.set_epoch(120); policy(torch.tensor([0.3]))
        3.0
    """

    constant = True

    def __init__(self, milestones: Mapping[int, float]) -> None:
        if not milestones or 0 not in milestones:
            raise ValueError(
                f"milestones: expected a mapping epoch -> gamma that includes epoch 0, got {dict(milestones)}"
            )
        items = sorted(
            (int(e), check_positive(g, "gamma", allow_zero=True)) for e, g in milestones.items()
        )
        self.milestones = dict(items)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch: expected an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    @property
    def gamma(self) -> float:
        """γ of the current epoch."""
        return [g for e, g in self.milestones.items() if e <= self.epoch][-1]

    def __call__(self, p: Tensor) -> float:
        return self.gamma

    def steps(self) -> tuple[tuple[tuple[float, float], ...], float]:
        return (), self.gamma

    @property
    def min_gamma(self) -> float:
        return min(self.milestones.values())

    @property
    def max_gamma(self) -> float:
        return max(self.milestones.values())

    def __repr__(self) -> str:
        return f"ScheduledGamma({self.milestones}, epoch={self.epoch})"


#: The named γ policies :func:`get_gamma_policy` accepts.
GAMMA_POLICIES: Registry[GammaPolicy] = Registry("gamma policy")
GAMMA_POLICIES.register("flsd53", "flsd_53")(
    lambda: ThresholdGamma((0.2, 0.5), (5.0, 3.0), default=3.0)
)
GAMMA_POLICIES.register("flsd52", "flsd_52")(
    lambda: ThresholdGamma((0.2, 0.5), (5.0, 3.0), default=2.0)
)
GAMMA_POLICIES.register("flsd53_sst")(lambda: ThresholdGamma((0.19, 0.5), (5.0, 3.0), default=3.0))
GAMMA_POLICIES.register("flsc531", "flsc_531")(lambda: ScheduledGamma({0: 5.0, 100: 3.0, 250: 1.0}))
GAMMA_POLICIES.register("flsc532", "flsc_532")(lambda: ScheduledGamma({0: 5.0, 100: 3.0, 250: 2.0}))
GAMMA_POLICIES.register("lambertw", "lambert_w")(LambertWGamma)


def get_gamma_policy(gamma: Any, *, allow_negative: bool = False) -> GammaPolicy:
    """A :class:`GammaPolicy` from a number, a registered name or a policy.

    Names: ``flsd53``, ``flsd52``, ``flsd53_sst``, ``flsc531``, ``flsc532``, ``lambertw``.
    Raises ValueError for a negative γ unless ``allow_negative``.

    Example:
        >>> get_gamma_policy("flsd53")
        ThresholdGamma(thresholds=(0.2, 0.5), gammas=(5.0, 3.0), default=3)
    """
    if isinstance(gamma, GammaPolicy):
        policy = gamma
    elif isinstance(gamma, str):
        policy = GAMMA_POLICIES.get(gamma)
    elif isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
        policy = FixedGamma(float(gamma))
    else:
        raise TypeError(
            "gamma: expected a number, a policy name "
            f"({', '.join(GAMMA_POLICIES.names())}) or a GammaPolicy, got {gamma!r}"
        )
    if not allow_negative and policy.min_gamma < 0:
        raise ValueError(f"gamma: expected gamma >= 0 for this loss, got {policy!r}")
    return policy


def gamma_functions(
    policy: GammaPolicy, *, margin: bool = False, inverse: bool = False
) -> tuple[GammaFn, GammaTableFn]:
    """``(gamma_fn, gamma_table)`` of a focal-family loss whose γ comes from ``policy``.

    γ is the policy's value at the detached :math:`p_y`, or at the margin :math:`p_y - p_j` with
    ``margin`` (dual focal loss); ``inverse`` makes every item inverse focal. ``gamma_table``
    gives the policy as a step function for the fused CPU kernel, or None if it is not one.
    """

    def gamma_fn(p_y: Tensor, p_j: Tensor | None) -> tuple[Tensor | float, bool]:
        reference = p_y - p_j if margin and p_j is not None else p_y
        return policy(reference if policy.constant else reference.detach()), inverse

    def gamma_table(dtype: torch.dtype) -> GammaTable | None:
        steps = policy.steps()
        return None if steps is None else GammaTable(*steps, margin=margin, inverse=inverse)

    return gamma_fn, gamma_table


class GammaLoss(WeightedLoss):
    """Base of the γ-based loss modules: holds the γ policy and forwards ``set_epoch``.

    ``gamma=None`` means the subclass's ``default_gamma``; ``label_smoothing`` as
    :func:`~focalcal.losses.focal_loss`.
    """

    default_gamma: float = 3.0

    def __init__(
        self,
        gamma: float | str | GammaPolicy | None = None,
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
        label_smoothing: float = 0.0,
    ) -> None:
        from focalcal.losses._soft import check_label_smoothing  # _soft imports the kernel

        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction, validate=validate
        )
        self.gamma = get_gamma_policy(self.default_gamma if gamma is None else gamma)
        self.label_smoothing = check_label_smoothing(label_smoothing)

    def set_epoch(self, epoch: int) -> None:
        """Advance an epoch-scheduled γ (FLSc-531); a no-op for other policies."""
        self.gamma.set_epoch(epoch)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma!r}, {super().extra_repr()}"
