"""The README's loss benchmark runs: every loss is timed against ``F.cross_entropy`` on a small
input (a smoke test of ``benchmarks/losses.py``; timings themselves are never asserted)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "losses.py"


@pytest.mark.usefixtures("cpu_kernel")
def test_benchmark_times_every_loss_against_cross_entropy() -> None:
    spec = importlib.util.spec_from_file_location("losses_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ratios, ce_time = module.bench_shape(
        (6, 5, 2), torch.device("cpu"), repeats=2, validate=True, burst=1
    )
    assert set(ratios) == {name for name, _ in module.LOSSES}
    assert all(math.isfinite(r) and r > 0 for r in ratios.values())
    assert math.isfinite(ce_time) and ce_time > 0
