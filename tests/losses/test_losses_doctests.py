"""The runnable examples in the loss docstrings (each calls ``.backward()``) are run here."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "focalcal.losses",
    "focalcal.losses.focal",
    "focalcal.losses.dual_focal",
    "focalcal.losses.gamma",
    "focalcal.losses.adafocal",
    "focalcal.losses.brier",
    "focalcal.losses.mmce",
    "focalcal.losses.label_smoothing",
    "focalcal.losses.reference",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
