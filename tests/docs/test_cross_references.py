"""The site's cross-reference rule on a two-line site: a reference to a focalcal object by its
defining module links to where the reference documents it, and a misspelt one fails a -W build."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _conf() -> str:
    """The site's extension and its nitpick rules, on a page of its own."""
    ignored = runpy.run_path(str(DOCS / "conf.py"))["nitpick_ignore_regex"]
    return (
        f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        'extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "focalcal_xref"]\n'
        f"nitpicky = True\nnitpick_ignore_regex = {ignored!r}\n"
    )


def _build(tmp_path: Path, reference: str) -> tuple[int, str, str]:
    build_main = pytest.importorskip("sphinx.cmd.build").build_main
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text(_conf(), encoding="utf-8")
    (source / "index.rst").write_text(
        f"Page\n====\n\n.. autofunction:: focalcal.metrics.ece\n\nSee {reference}.\n",
        encoding="utf-8",
    )
    warnings = tmp_path / "warnings.txt"
    out = tmp_path / "html"
    status = build_main(["-W", "-q", "-b", "html", "-w", str(warnings), str(source), str(out)])
    html = (out / "index.html").read_text(encoding="utf-8") if status == 0 else ""
    return status, warnings.read_text(encoding="utf-8"), html


def test_a_reference_by_defining_module_links_to_the_documented_name(tmp_path: Path) -> None:
    status, warnings, html = _build(tmp_path, ":func:`focalcal.metrics.functional.ece`")
    assert status == 0, warnings
    assert 'href="#focalcal.metrics.ece"' in html


def test_a_misspelt_reference_fails_the_build(tmp_path: Path) -> None:
    status, warnings, _ = _build(tmp_path, ":func:`focalcal.metrics.functional.ecee`")
    assert status != 0
    assert "focalcal.metrics.functional.ecee" in warnings
