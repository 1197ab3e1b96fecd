r"""Vector and matrix scaling: affine maps of the logits fitted by penalised NLL.

Both act on the row-centred logits :math:`\bar z = z - \tfrac1C \sum_c z_c` (softmax ignores a
per-row constant, so logits and log-probabilities give the same calibrator; Guo et al. apply the
map to raw logits, which makes the result depend on that arbitrary constant). Both minimise, over
the fitting set, the mean negative log-likelihood of
:math:`\operatorname{softmax}(g(z))` plus an L2 penalty, with L-BFGS (strong Wolfe line search) in
float64, full batch, starting from the identity map (the uncalibrated model).

Reference: Guo et al., *On Calibration of Modern Neural Networks*, ICML 2017 (vector and matrix
scaling); Kull et al., *Beyond temperature scaling: obtaining well-calibrated multiclass
probabilities with Dirichlet calibration*, NeurIPS 2019 (ODIR: off-diagonal and intercept
regularisation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from focalcal._validation import check_int, check_positive
from focalcal.calibration._base import LogitCalibrator, compute_dtype

__all__ = ["MatrixScaling", "VectorScaling"]


def _fit_penalised_nll(
    z: Tensor,
    y: Tensor,
    params: list[Tensor],
    forward: Callable[[Tensor], Tensor],
    penalty: Callable[[], Tensor],
    max_iter: int,
    tol: float,
) -> int:
    """Minimise ``mean NLL(softmax(forward(z)), y) + penalty()`` over ``params`` in place.

    Returns the number of L-BFGS iterations.
    """
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        max_eval=2 * max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(forward(z), y) + penalty()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return int(optimizer.state[params[0]].get("n_iter", 0))


def _centre(z: Tensor) -> Tensor:
    """Subtract each row's mean logit: softmax ignores it, and the fitted map then depends only on
    the probabilities (logits and log-probabilities give the same calibrator)."""
    return z - z.mean(dim=1, keepdim=True)


class _AffineScaling(LogitCalibrator):
    """Shared fitting of vector and matrix scaling (hyper-parameter checks, L-BFGS, transform)."""

    max_iter: int
    tol: float
    reg_intercept: float

    def _initial_weight(self, k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The identity map's weight (the uncalibrated model)."""
        raise NotImplementedError

    def _init_params(self, k: int, dtype: torch.dtype, device: torch.device) -> list[Tensor]:
        weight = self._initial_weight(k, dtype, device)
        return [weight, torch.zeros(k, dtype=dtype, device=device)]

    def _apply(self, z: Tensor, params: list[Tensor]) -> Tensor:
        raise NotImplementedError

    def _penalty(self, params: list[Tensor]) -> Tensor:
        return params[0].new_zeros(())

    def _check_params(self) -> None:
        check_int(self.max_iter, "max_iter", min_value=1)
        check_positive(self.tol, "tol")
        check_positive(self.reg_intercept, "reg_intercept", allow_zero=True)

    def _fit(self, z: Tensor, y: Tensor) -> None:
        self._check_params()
        z64 = _centre(z.to(compute_dtype(z.device)))
        params = [p.requires_grad_() for p in self._init_params(z.shape[1], z64.dtype, z.device)]
        self.n_iter_ = _fit_penalised_nll(
            z64,
            y,
            params,
            lambda x: self._apply(x, params),
            lambda: self._penalty(params),
            self.max_iter,
            self.tol,
        )
        self._params = [p.detach() for p in params]

    def _transform(self, z: Tensor) -> Tensor:
        params = [p.to(device=z.device, dtype=z.dtype) for p in self._params]
        return self._apply(_centre(z), params)

    @property
    def coef_(self) -> Tensor:
        """The fitted weight: ``w`` (C,) for vector, ``W`` (C, C) for matrix scaling (float64)."""
        return self._params[0]

    @property
    def intercept_(self) -> Tensor:
        """The fitted intercept ``b`` (C,)."""
        return self._params[1]


class VectorScaling(_AffineScaling):
    r"""Per-class scale and shift of the logits.

    .. math:: \hat p = \operatorname{softmax}(w \odot \bar z + b),\qquad w, b \in \mathbb R^C

    fitted by minimising the mean NLL (optionally + ``reg_intercept / C · ||b||²``) with L-BFGS
    from ``w = 1, b = 0``.

    Args:
        reg_intercept: L2 penalty on the intercept ``b`` (0 = none, as Guo et al.).
        max_iter: L-BFGS iteration limit. tol: gradient tolerance.

    Fitted attributes: ``coef_`` (C,), ``intercept_`` (C,), ``n_classes_``, ``n_iter_``.

    Reference: Guo et al., ICML 2017, §4.2.

    Example:
        >>> import torch
        >>> logits = torch.randn(500, 4, generator=torch.Generator().manual_seed(0)) * 3
        >>> labels = (logits / 3 + torch.randn(500, 4)).argmax(1)
        >>> vs = VectorScaling().fit(logits, labels)
        >>> vs.coef_.shape, vs.predict_proba(logits).sum(1).allclose(torch.ones(500))
        (torch.Size([4]), True)
    """

    def __init__(self, *, reg_intercept: float = 0.0, max_iter: int = 300, tol: float = 1e-6):
        self.reg_intercept = reg_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _initial_weight(self, k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        return torch.ones(k, dtype=dtype, device=device)

    def _apply(self, z: Tensor, params: list[Tensor]) -> Tensor:
        scale, shift = params
        return torch.addcmul(shift, z, scale)

    def _penalty(self, params: list[Tensor]) -> Tensor:
        return self.reg_intercept * params[1].square().mean()


class MatrixScaling(_AffineScaling):
    r"""Full affine map of the logits with ODIR regularisation (Kull et al. 2019).

    .. math::
        \hat p = \operatorname{softmax}(W \bar z + b),\qquad
        \mathcal L = \frac1N\sum_i -\log \hat p_{i y_i}
          + \frac{\lambda}{C(C-1)}\sum_{j \ne k} W_{jk}^2 + \frac{\mu}{C}\sum_j b_j^2

    The diagonal of ``W`` is not penalised, so ``λ, μ → ∞`` gives vector scaling without intercept
    and ``λ = μ = 0`` gives Guo et al.'s (easily over-fitted) matrix scaling. Fitted with L-BFGS from
    ``W = I, b = 0``.

    Args:
        reg_off_diagonal: λ, the penalty on the off-diagonal entries of ``W``.
        reg_intercept: μ, the penalty on ``b``.
        max_iter: L-BFGS iteration limit. tol: gradient tolerance.

    Fitted attributes: ``coef_`` (C, C), ``intercept_`` (C,), ``n_classes_``, ``n_iter_``.

    Reference: Kull et al., NeurIPS 2019, §4 (ODIR); Guo et al., ICML 2017 (matrix scaling).

    Example:
        >>> import torch
        >>> logits = torch.randn(500, 4, generator=torch.Generator().manual_seed(0)) * 3
        >>> labels = (logits / 3 + torch.randn(500, 4)).argmax(1)
        >>> ms = MatrixScaling().fit(logits.numpy(), labels.numpy())
        >>> ms.coef_.shape, ms.predict_proba(logits.numpy()).shape
        (torch.Size([4, 4]), (500, 4))
    """

    def __init__(
        self,
        *,
        reg_off_diagonal: float = 1e3,
        reg_intercept: float = 1e3,
        max_iter: int = 300,
        tol: float = 1e-6,
    ):
        self.reg_off_diagonal = reg_off_diagonal
        self.reg_intercept = reg_intercept
        self.max_iter = max_iter
        self.tol = tol

    def _check_params(self) -> None:
        super()._check_params()
        check_positive(self.reg_off_diagonal, "reg_off_diagonal", allow_zero=True)

    def _initial_weight(self, k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        return torch.eye(k, dtype=dtype, device=device)

    def _apply(self, z: Tensor, params: list[Tensor]) -> Tensor:
        weight, bias = params
        return torch.addmm(bias, z, weight.T)

    def _penalty(self, params: list[Tensor]) -> Tensor:
        weight, bias = params
        k = weight.shape[0]
        off_diagonal = weight.square().sum() - weight.diagonal().square().sum()
        off = self.reg_off_diagonal * off_diagonal / max(k * (k - 1), 1)
        return off + self.reg_intercept * bias.square().mean()
