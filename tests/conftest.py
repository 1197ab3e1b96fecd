"""Shared fixtures: one intra-op thread, and the optional reference data in ../shared."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(os.environ.get("FOCALCAL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REFVECTORS = SHARED / "refvectors" / "vectors.npz"
DATA = SHARED / "data"


@pytest.fixture(autouse=True)
def _one_intra_op_thread() -> Iterator[None]:
    """Tests use small tensors: one intra-op thread is as fast, deterministic, and on a busy shared
    CPU it avoids OpenMP spin-waiting (a 2-thread MLP epoch measured 16× slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def refvectors() -> dict[str, np.ndarray]:
    """The official implementations' outputs (skips when ../shared is absent)."""
    if not REFVECTORS.exists():
        pytest.skip(f"reference vectors not found at {REFVECTORS}")
    with np.load(REFVECTORS, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (skips when absent)."""
    if not DATA.exists():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA
