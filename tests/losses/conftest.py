"""Fixtures of the loss tests: run a test under each CPU kernel of the focal family."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from focalcal.losses import get_cpu_kernel, set_cpu_kernel
from loss_contract import require_fused_kernel


@pytest.fixture(params=["eager", "fused"])
def cpu_kernel(request: pytest.FixtureRequest) -> Iterator[str]:
    """The focal-family CPU kernel the test runs under (both, in turn)."""
    if request.param == "fused":
        require_fused_kernel()
    previous = get_cpu_kernel()
    set_cpu_kernel(request.param)
    yield request.param
    set_cpu_kernel(previous)


@pytest.fixture
def fused_kernel() -> Iterator[object]:
    """The fused kernel's module, with the fused kernel selected for the test."""
    require_fused_kernel()
    previous = get_cpu_kernel()
    set_cpu_kernel("fused")
    from focalcal.losses._fused import build_fused_kernel

    yield build_fused_kernel()
    set_cpu_kernel(previous)
