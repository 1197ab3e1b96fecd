"""Resolve cross-references to focalcal objects by what they are, not by the path they are named by.

The API reference documents each public object once, under its package (``focalcal.metrics.ece``),
but docstrings also name objects by their defining module (``focalcal.metrics.binning.
equal_mass_edges``), by a short name seen from their own module (``assign_bins``), or name a
private helper (``edges_in_dtype``). For a Python reference that Sphinx cannot resolve, this
extension imports the target (absolutely, then relative to the referring class, to the module it is
documented in and to the module that defines the referring docstring):

* an object documented under another name gets a link to that name;
* a focalcal module gets a link to the nearest documented package above it;
* an object defined in focalcal but not part of the public reference is shown as code, without a
  link;
* anything else (a name that does not import, or an object from another library reached through
  a focalcal module) stays unresolved: ``nitpick_ignore_regex`` in ``conf.py`` accepts the
  external names it lists, and every other one fails the ``-W`` build.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

LOG = logging.getLogger(__name__)
_SOURCE_OBJECT = re.compile(r"docstring of ([\w.]+)")


def _lookup(path: str) -> tuple[bool, Any]:
    """Import ``path`` (``package.module.attr.attr``); ``(False, None)`` when it does not exist."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False, None
        return True, obj
    return False, None


def _defining_module(path: str | None) -> str | None:
    found, obj = _lookup(path) if path else (False, None)
    return getattr(obj, "__module__", None) if found else None


def _candidates(target: str, node: nodes.Element) -> list[str]:
    module, cls = node.get("py:module"), node.get("py:class")
    source = _SOURCE_OBJECT.search(node.source or "")
    source_object = source.group(1) if source else None
    contexts = [f"{module}.{cls}" if module and cls else None, module]
    contexts += [_defining_module(f"{module}.{cls}") if module and cls else None]
    if source_object:
        contexts += [source_object.rsplit(".", 1)[0], _defining_module(source_object)]
    return [target] + [f"{c}.{target}" for c in contexts if c]


def _documented_by_identity(env: BuildEnvironment) -> dict[int, str]:
    """id(object) -> the name under which the reference documents it (built once per build)."""
    cache = getattr(env, "_focalcal_documented", None)
    if cache is None:
        cache = {}
        for name, entry in env.get_domain("py").objects.items():
            found, obj = _lookup(name)
            if found and entry.objtype != "module":
                cache.setdefault(id(obj), name)
        env._focalcal_documented = cache
    return cache


def resolve(
    app: Sphinx, env: BuildEnvironment, node: nodes.Element, contnode: nodes.Element
) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    py = env.get_domain("py")
    for candidate in _candidates(target, node):
        if not candidate.startswith("focalcal"):
            continue
        found, obj = _lookup(candidate)
        if not found:
            continue
        documented = _documented_by_identity(env).get(id(obj))
        if documented:
            return py.resolve_xref(
                env, node["refdoc"], app.builder, "obj", documented, node, contnode
            )
        if isinstance(obj, type(importlib)) and obj.__name__.startswith("focalcal"):
            name = obj.__name__
            while name not in py.modules:  # "focalcal" itself is not a page: stop at a package
                name = name.rpartition(".")[0]
                if not name:
                    return contnode
            return py.resolve_xref(env, node["refdoc"], app.builder, "mod", name, node, contnode)
        if str(getattr(obj, "__module__", "")).startswith("focalcal"):
            return contnode  # defined in focalcal, not part of the public reference
        # anything else (torch's nn seen through a focalcal module, say) is not ours to resolve
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", resolve)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
