"""Fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_intra_op_thread() -> Iterator[None]:
    """The models here are tiny: one intra-op thread is as fast, and on a busy shared CPU it
    avoids OpenMP spin-waiting (a 2-thread MLP epoch measured 16× slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
