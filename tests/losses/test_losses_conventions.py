"""Conventions every loss keeps: exact fp32 under bf16 autocast (also for methods), booleans
checked as booleans, no overflow of inverse focal loss to inf, and a light ``import``."""

from __future__ import annotations

import functools
import subprocess
import sys

import numpy as np
import pytest
import torch

from focalcal.losses import (
    AdaFocalLoss,
    InverseFocalLoss,
    MMCELoss,
    adafocal_gamma_update,
    brier_loss,
    cross_entropy,
    dual_focal_loss,
    focal_loss,
    get_cpu_kernel,
    get_loss,
    inverse_focal_loss,
    label_smoothing_loss,
    loss_names,
    mmce_loss,
    set_cpu_kernel,
)
from focalcal.losses._reduce import compute_in_fp32
from focalcal.losses.gamma import ThresholdGamma

X = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 3
T = torch.tensor([0, 1, 2, 3, 0, -100])


@pytest.mark.usefixtures("cpu_kernel")
@pytest.mark.parametrize("name", loss_names())
def test_bf16_autocast_gives_exactly_the_fp32_value(name: str) -> None:
    """Every registered name (aliases included): under CPU bf16 autocast, fp32 logits give the
    fp32 value and gradient bit for bit, and bf16 logits the fp32 value of the upcast logits."""
    logits = torch.randn(16, 7, generator=torch.Generator().manual_seed(1)) * 3
    target = torch.randint(0, 7, (16,), generator=torch.Generator().manual_seed(2))
    loss = get_loss(name)
    x = logits.clone().requires_grad_(True)
    expected = loss(x, target)
    (expected_grad,) = torch.autograd.grad(expected, x)
    low = logits.bfloat16()
    expected_low = loss(low.float(), target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(x, target)
        (grad,) = torch.autograd.grad(value, x)
        value_low = loss(low, target)
    assert value.dtype == value_low.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=0, atol=0)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)
    torch.testing.assert_close(value_low, expected_low, rtol=0, atol=0)


class _Probe:
    """Records whether autocast is on where a loss would compute."""

    @compute_in_fp32
    def method(self, logits: torch.Tensor, target: torch.Tensor) -> bool:
        return torch.is_autocast_enabled("cpu")


@compute_in_fp32
def _function(logits: torch.Tensor, target: torch.Tensor) -> bool:
    return torch.is_autocast_enabled("cpu")


def test_fp32_guard_finds_the_logits_by_name_on_methods_and_functions() -> None:
    probe = _Probe()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        assert probe.method(X, T) is False
        assert probe.method(logits=X, target=T) is False
        assert _function(X, T) is False
        assert _function(target=T, logits=X) is False


def test_adafocal_computes_with_autocast_off() -> None:
    """The guard of ``AdaFocalLoss._loss`` (a method: ``args[0]`` is ``self``) is active where
    γ is looked up."""

    seen: list[bool] = []

    class Recording(AdaFocalLoss):
        def _gamma(self, p_y, p_j):
            seen.append(torch.is_autocast_enabled("cpu"))
            return super()._gamma(p_y, p_j)

    previous = get_cpu_kernel()
    set_cpu_kernel("eager")  # the eager kernel calls ``_gamma`` from Python
    try:
        loss = Recording()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss(X, T)
    finally:
        set_cpu_kernel(previous)
    assert seen == [False]


BOOLEAN_CALLS = [
    ("validate", lambda v: focal_loss(X, T, validate=v)),
    ("validate", lambda v: dual_focal_loss(X, T, validate=v)),
    ("validate", lambda v: inverse_focal_loss(X, T, validate=v)),
    ("validate", lambda v: brier_loss(X, T, validate=v)),
    ("validate", lambda v: label_smoothing_loss(X, T, validate=v)),
    ("validate", lambda v: cross_entropy(X, T, validate=v)),
    ("validate", lambda v: mmce_loss(X, T, validate=v)),
    ("weighted", lambda v: mmce_loss(X, T, weighted=v)),
    ("weighted", lambda v: MMCELoss(weighted=v)),
    ("signed", lambda v: adafocal_gamma_update(torch.ones(2), torch.zeros(2), signed=v)),
    (
        "from_logits",
        lambda v: AdaFocalLoss().update(
            torch.randn(8, 3), torch.zeros(8, dtype=int), from_logits=v
        ),
    ),
]


@pytest.mark.parametrize("value", ["false", 0, None, np.array([True])])
@pytest.mark.parametrize(("argument", "call"), BOOLEAN_CALLS)
def test_boolean_options_must_be_booleans(argument: str, call, value) -> None:
    with pytest.raises(TypeError, match=f"{argument}: expected a bool \\(True or False\\), got"):
        call(value)


@pytest.mark.parametrize("name", loss_names())
def test_every_loss_module_checks_validate_as_a_boolean(name: str) -> None:
    with pytest.raises(
        TypeError, match="validate: expected a bool \\(True or False\\), got str 'false'"
    ):
        get_loss(name, validate="false")
    get_loss(name, validate=np.bool_(False))(X, T)  # numpy booleans are booleans


@pytest.mark.parametrize(
    ("dtype", "limit"), [(torch.float32, 128), (torch.bfloat16, 128), (torch.float64, 1024)]
)
def test_inverse_focal_gamma_beyond_the_overflow_limit_is_an_error(dtype, limit) -> None:
    """(1 + p)^γ overflows the compute dtype (float32 for bf16 input) from γ = log2(max)."""
    compute = "torch.float32" if dtype != torch.float64 else "torch.float64"
    pattern = f"gamma: expected gamma < {limit} for inverse focal loss with {compute} logits"
    logits = X.to(dtype)
    for gamma in (float(limit), limit + 72.0):
        with pytest.raises(ValueError, match=pattern):
            inverse_focal_loss(logits, T, gamma)
        with pytest.raises(ValueError, match=pattern):
            InverseFocalLoss(gamma)(logits, T)
    with pytest.raises(ValueError, match=pattern):  # a policy whose largest γ is too large
        inverse_focal_loss(logits, T, ThresholdGamma((0.5,), (2.0 * limit,), default=1.0))
    # just below the limit, confident items (p_y → 1, the largest base 1 + p_y) stay finite
    x = (torch.eye(4)[T.clamp_min(0)] * 40.0).to(dtype).requires_grad_(True)
    value = inverse_focal_loss(x, T, limit - 1.0, reduction="sum")
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


HEAVY = ("torchmetrics", "scipy", "matplotlib", "lightning", "sklearn")


@functools.cache
def _imports() -> tuple[frozenset[str], frozenset[str]]:
    """The modules a fresh interpreter holds after ``import focalcal.metrics.binning`` (the
    binning primitive the losses use), and after ``import focalcal.losses`` next."""
    code = (
        "import sys; import focalcal.metrics.binning; print(' '.join(sys.modules)); "
        "import focalcal.losses; print(' '.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    binning, losses = out.stdout.splitlines()
    return frozenset(binning.split()), frozenset(losses.split())


def _top_level(modules: frozenset[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_losses_import_only_the_binning_primitive_of_metrics() -> None:
    """Beyond what the binning primitive brings, the losses import only their own modules and
    the shared registry and validation helpers."""
    binning, losses = _imports()
    outside = {m for m in losses - binning if m.startswith("focalcal")}
    outside = {m for m in outside if not m.startswith("focalcal.losses")}
    assert outside <= {"focalcal._registry", "focalcal._validation"}, sorted(outside)


def test_importing_the_losses_loads_no_heavy_library() -> None:
    binning, losses = _imports()
    through_metrics = set(HEAVY) & _top_level(binning)
    if through_metrics:
        pytest.skip(f"the focalcal.metrics package itself imports {sorted(through_metrics)}")
    assert set(HEAVY) & _top_level(losses) == set()
