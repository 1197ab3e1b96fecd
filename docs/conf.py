"""Sphinx configuration of the focalcal documentation site.

Build: ``pip install -e ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html``.
No network is needed: there are no intersphinx inventories, so references to external types
(torch, numpy, ...) are listed in ``nitpick_ignore_regex`` instead of being resolved.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "src"))
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "focalcal"
author = "focalcal developers"
copyright = "focalcal developers, MIT licence"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
    "focalcal_xref",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "gallery", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True}
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Broken cross-references fail the build (-W). Names outside focalcal cannot be resolved without
# intersphinx inventories (no network), so they are ignored by pattern; focalcal's own are not.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|np|numpy|nn|F|torchmetrics|lightning|matplotlib|sklearn|scipy|PIL)(\..*)?"),
    (r"py:.*", r"(Tensor|ndarray|Module|Axes|Figure|Path|PathLike|Callable|Iterable|Iterator)"),
    (r"py:.*", r"(Sequence|Mapping|Any|Literal|Generator|ArrayLike|TypeVar|Protocol|NamedTuple)"),
    (r"py:.*", r"(collections|typing|os|pathlib|dataclasses|enum|abc)\..*"),
    (r"py:.*", r"(T|T_co|_T|Self)"),
]

# MathJax comes from its CDN. To render the formulas offline, point FOCALCAL_DOCS_MATHJAX at a local
# MathJax 2 (Debian: apt-get install libjs-mathjax; /usr/share/javascript/mathjax/MathJax.js); the
# built pages then load it from that path, so use this for local checks, not for a published site.
if os.environ.get("FOCALCAL_DOCS_MATHJAX"):
    mathjax_path = Path(os.environ["FOCALCAL_DOCS_MATHJAX"]).resolve().as_uri()
    mathjax_path += "?config=TeX-AMS-MML_HTMLorMML"
    mathjax2_config = {
        "messageStyle": "none",
        "tex2jax": {
            "processEscapes": True,
            "processClass": "math|output_area",
            "ignoreClass": "document",
        },
    }

html_theme = "furo"
html_title = "focalcal"
html_static_path: list[str] = []

sphinx_gallery_conf = {
    "examples_dirs": ["gallery"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
}
