"""The runnable examples in the integrations' docstrings, and the lazy package import."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

MODULES = {
    "focalcal.integrations": None,
    "focalcal.integrations.transformers": "transformers",
    "focalcal.integrations.lightning": "lightning",
    "focalcal.integrations.timm": "timm",
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docstring_examples_run(name: str) -> None:
    if MODULES[name] is not None:
        pytest.importorskip(MODULES[name])
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_the_package_imports_no_optional_library() -> None:
    code = (
        "import sys, focalcal.integrations; "
        "print(sorted(m for m in ('transformers', 'lightning', 'timm', 'accelerate') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['timm'] = None\n"
        "try:\n    import focalcal.integrations.timm\n"
        "except ImportError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "focalcal[timm]"' in out.stdout
