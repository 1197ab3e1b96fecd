"""The one place the commands find the library functions they call by name: the public names
of :mod:`focalcal.training` (its ``__all__``).

Every import here happens inside a function: the parser must build without torch.
"""

from __future__ import annotations

import importlib
from typing import Any


def library(name: str) -> Any:
    """``focalcal.training.<name>``, imported on first use."""
    return getattr(importlib.import_module("focalcal.training"), name)


def suite_name(name: str) -> str:
    """The canonical name of the suite (or study file) ``name``; unknown names raise, listing
    the valid ones."""
    return library("get_suite")(name).name


def suite_names() -> list[str]:
    """The registered suite names."""
    return library("SUITES").names()
