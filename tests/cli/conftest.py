"""Fixtures of the CLI / end-to-end tests: small real datasets cut from the packaged demo data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from focalcal.training.demo import DEMO_DATA


def _subset(y: np.ndarray, classes: range, per_class: int) -> np.ndarray:
    return np.concatenate([np.flatnonzero(y == c)[:per_class] for c in classes])


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """20 Newsgroups embeddings (the demo's real data): classes 0–9 as a small in-distribution
    npz (40 train + 20 test documents per class) and the test documents of classes 10–19 as an
    OOD npz (topics the model never saw)."""
    folder = tmp_path_factory.mktemp("tiny")
    with np.load(DEMO_DATA, allow_pickle=False) as d:
        data = {k: d[k] for k in d.files}
    ind, out = range(10), range(10, 20)
    tr = _subset(data["y_train"], ind, 40)
    te = _subset(data["y_test"], ind, 20)
    oo = _subset(data["y_test"], out, 10)
    names = data["class_names"]
    paths = {"ind": folder / "news10.npz", "ood": folder / "news_other.npz"}
    np.savez(
        paths["ind"],
        x_train=data["x_train"][tr], y_train=data["y_train"][tr],
        x_test=data["x_test"][te], y_test=data["y_test"][te], class_names=names[:10],
    )  # fmt: skip
    np.savez(
        paths["ood"],
        x_train=data["x_test"][oo], y_train=data["y_test"][oo] - 10,
        x_test=data["x_test"][oo], y_test=data["y_test"][oo] - 10, class_names=names[10:],
    )  # fmt: skip
    return paths


def _tiny_train_args(data: Path, out: Path, loss: str = "ce", *extra: str) -> list[str]:
    return [
        "train", "--dataset", "npz", "--data-root", str(data), "--model", "mlp",
        "--model-option", "hidden=32", "--loss", loss, "--preset", "cpu", "--epochs", "4",
        "--milestones", "2", "3", "--batch-size", "64", "--deterministic", "--no-progress",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _run_cli(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "focalcal.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def train_args() -> Callable[..., list[str]]:
    """``train_args(data, out, loss="ce", *extra)``: ``focalcal train`` arguments for a fast
    deterministic run on the tiny features (2×32 MLP, 4 epochs, lr ×0.1 at 2 and 3)."""
    return _tiny_train_args


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli(args)``: ``python -m focalcal.cli ARGS`` in a fresh process with one thread."""
    return _run_cli


def _error_line(stderr: str, command: str = "train") -> str:
    """The error of a failed command: the last line of ``stderr``, ``focalcal COMMAND: error:
    …``, the only such line, and no traceback (Lightning's info lines may come before it)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    prefix = f"focalcal {command}: error: "
    assert lines and lines[-1].startswith(prefix), lines[-5:]
    assert sum(line.startswith("focalcal ") for line in lines) == 1, lines[-5:]
    return lines[-1]


@pytest.fixture(scope="session")
def error_line() -> Callable[..., str]:
    """``error_line(stderr, command="train")``: the one-line error of a failed command."""
    return _error_line
