"""Every docstring example (``>>>``) of every module under ``src/focalcal`` runs as a doctest.

Modules are found from the source tree (each file that contains ``>>>``), so a new module is
covered without being listed here, and a file whose ``>>>`` lines are not found as doctests fails.
A module whose import needs an optional extra that is not installed is skipped, naming the missing
package; any other import error fails.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import focalcal

PACKAGE_ROOT = Path(focalcal.__file__).resolve().parent
OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        if parts[-1] == "__main__" or ">>>" not in path.read_text(encoding="utf-8"):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _module_names()


def test_the_source_tree_is_found() -> None:
    assert "focalcal.losses.focal" in MODULES and "focalcal.metrics" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as missing:
        if missing.name and missing.name.split(".")[0] == "focalcal":
            raise
        pytest.skip(f"{name} needs {missing.name!r} (an optional extra)")
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"{name} contains '>>>' but no docstring example is found by doctest"
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
