"""The API reference documents every public symbol: each package's ``__all__`` against its page.

A page lists its symbols one per line, as ``.. autofunction:: name``, ``.. autoclass:: name``,
``.. py:data:: name`` or, for a public submodule, ``.. automodule:: package.submodule``; adding a
symbol to ``__all__`` means adding that one line to the page named in the failure message.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API_PAGES = Path(__file__).resolve().parents[2] / "docs" / "api"
PACKAGES = ["losses", "metrics", "calibration", "plots", "data", "models", "training"]
DIRECTIVE = re.compile(
    r"^\.\. (?:auto(?:function|class|data|exception|module)|py:(?:function|class|data|exception))"
    r"::\s+(\S+)\s*$",
    re.MULTILINE,
)


def documented_symbols(package: str, page: Path) -> set[str]:
    """Names the page documents, relative to ``focalcal.<package>`` (the package itself left out)."""
    prefix = f"focalcal.{package}"
    names = set()
    for name in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
        if name == prefix:
            continue
        names.add(name.removeprefix(prefix + "."))
    return names


def test_directive_pattern_reads_every_form(tmp_path: Path) -> None:
    text = (
        ".. autofunction:: ece\n.. autoclass:: ECE\n.. py:data:: MODELS\n"
        ".. automodule:: focalcal.metrics.ood\n.. automodule:: focalcal.metrics\n   :no-members:\n"
    )
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    assert documented_symbols("metrics", page) == {"ece", "ECE", "MODELS", "ood"}


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_symbol_has_a_reference_entry(package: str) -> None:
    module = importlib.import_module(f"focalcal.{package}")
    page = API_PAGES / f"{package}.md"
    assert page.is_file(), f"focalcal.{package} has no API reference page: expected {page}"
    public, documented = set(module.__all__), documented_symbols(package, page)
    missing, stale = sorted(public - documented), sorted(documented - public)
    assert not missing, (
        f"focalcal.{package}.__all__ names {missing} but {page} does not document them; "
        f"add one line per symbol (e.g. '.. autofunction:: {missing[0]}') to that page"
    )
    assert not stale, (
        f"{page} documents {stale}, which focalcal.{package}.__all__ does not export; "
        "remove those lines or export the symbols"
    )
