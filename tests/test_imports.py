"""Import hygiene: what each entry point imports, and no import cycle in src/focalcal.

The import checks run in a fresh interpreter and read ``sys.modules`` there; the cycle check
reads the source with ``ast`` (module-level imports only: an import inside a function runs
when the function is called, after every module has finished importing, so it cannot form a
cycle at import time).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "focalcal"


def _modules_after(code: str) -> set[str]:
    """The top-level package names in ``sys.modules`` after running ``code`` in a fresh process."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}


def test_losses_import_no_metrics_plots_or_lightning():
    loaded = _modules_after("import focalcal.losses")
    assert loaded.isdisjoint({"torchmetrics", "scipy", "matplotlib", "lightning"}), loaded


def test_metrics_import_neither_lightning_nor_matplotlib():
    loaded = _modules_after("import focalcal.metrics")
    assert loaded.isdisjoint({"lightning", "matplotlib"}), loaded


def test_the_config_declaration_imports_no_torch():
    """The parser is built from TrainConfig, so its module must load without torch."""
    loaded = _modules_after("import focalcal.training.config, focalcal.cli")
    assert loaded.isdisjoint({"torch", "numpy", "lightning"}), loaded


def test_help_of_every_command_imports_no_torch():
    """``focalcal --help`` and ``focalcal SUBCOMMAND --help`` for every subcommand, one after the
    other in one fresh process: torch (or numpy, or lightning) appears after none of them."""
    code = """
import sys, json
from focalcal.cli import build_parser, main
sub = next(a for a in build_parser()._actions if a.dest == "command")
heavy = {}
for argv in [[], *([name] for name in sorted(sub.choices))]:
    try:
        main([*argv, "--help"])
    except SystemExit as exit:
        assert exit.code == 0, (argv, exit.code)
    loaded = {m.split(".")[0] for m in sys.modules} & {"torch", "numpy", "lightning"}
    heavy[" ".join(argv) or "(top level)"] = sorted(loaded)
print(json.dumps(heavy))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    heavy = json.loads(done.stdout.splitlines()[-1])
    assert len(heavy) >= 8 and "tune-gamma" in heavy and "train" in heavy
    assert all(loaded == [] for loaded in heavy.values()), heavy


# ----------------------------------------------------------------------------- static graph


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_nodes(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not in function bodies and not under
    ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]):
    """The focalcal modules an import statement loads (relative imports resolved)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        origin = node.module or ""
        if node.level:
            origin = f"{base}.{origin}" if origin else base
        # `from pkg import sub` needs only the submodule pkg.sub (Python imports it even while
        # pkg/__init__ is still running); any other name needs pkg itself to have finished
        subs = [f"{origin}.{alias.name}" for alias in node.names]
        names = subs if all(s in known for s in subs) else [origin, *subs]
    return {name for name in names if name in known}


def import_graph() -> dict[str, set[str]]:
    """``module -> focalcal modules it imports at import time``, for every module of src/."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = set()
        for node in _import_time_nodes(tree):
            graph[module] |= _targets(node, module, is_package, known) - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_resolves_relative_imports():
    source = (
        "from . import run\nfrom ..losses import focal\nimport focalcal._io\n"
        "from ..metrics import ece\ndef later():\n    from .. import cli\n"
    )
    known = {"focalcal.training", "focalcal.training.run", "focalcal.losses"}
    known |= {"focalcal.losses.focal", "focalcal._io", "focalcal.metrics", "focalcal.cli"}
    found = set()
    for node in _import_time_nodes(ast.parse(source)):
        found |= _targets(node, "focalcal.training.demo", False, known)
    expected = {"focalcal.training.run", "focalcal.losses.focal", "focalcal._io"}
    assert found == expected | {"focalcal.metrics"}  # not the package of a submodule import


def test_no_import_cycle_in_src():
    graph = import_graph()
    assert "focalcal.cli" in graph and "focalcal.training.config" in graph
    assert cycles(graph) == []


def test_the_library_never_imports_the_cli():
    """Only focalcal.cli itself may import focalcal.cli (at any depth, in functions too)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module.startswith("focalcal.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                relative_cli = node.level and "cli" in name.split(".")[:1]
                if name.startswith("focalcal.cli") or relative_cli:
                    offenders.append(module)
            elif isinstance(node, ast.Import):
                if any(a.name.startswith("focalcal.cli") for a in node.names):
                    offenders.append(module)
    assert offenders == [], json.dumps(sorted(set(offenders)))
