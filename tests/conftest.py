"""Shared fixtures: paths to the optional reference data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED = Path(os.environ.get("FOCALCAL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REFVECTORS = SHARED / "refvectors" / "vectors.npz"
DATA = SHARED / "data"


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
