"""The README is a front page: small, with the two set-up commands, runnable snippets, live links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_BYTES = 12_000
TEST_COMMAND = 'pip install -e ".[dev]" && python -m pytest'
DEMO_COMMAND = 'pip install -e ".[all]" && focalcal demo'


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def _command_lines(text: str) -> list[str]:
    return [
        line.split("#")[0].strip() for block in _blocks(text, "bash") for line in block.split("\n")
    ]


def test_readme_is_at_most_12_kb() -> None:
    size = README.stat().st_size
    assert size <= MAX_BYTES, f"README.md is {size} bytes; the front page must stay <= {MAX_BYTES}"


def test_readme_keeps_the_two_set_up_commands() -> None:
    lines = _command_lines(README.read_text(encoding="utf-8"))
    assert DEMO_COMMAND in lines and TEST_COMMAND in lines


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    readme_tests = [ln for ln in _command_lines(README.read_text()) if "pytest" in ln]
    assert readme_tests == [TEST_COMMAND], readme_tests
    assert TEST_COMMAND in ci_lines, f".ci/run must run the README's test command: {TEST_COMMAND}"


def test_relative_links_of_the_readme_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links into the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


@pytest.mark.parametrize(
    ("page", "index"),
    [
        (page, i)
        for page in ("README.md", "docs/getting-started.md")
        for i in range(len(_blocks((ROOT / page).read_text(encoding="utf-8"), "python")))
    ],
)
def test_python_snippets_run(page: str, index: int, tmp_path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    code = _blocks((ROOT / page).read_text(encoding="utf-8"), "python")[index]
    monkeypatch.chdir(tmp_path)  # snippets may write files (a reliability diagram)
    exec(compile(code, f"{page} python block {index}", "exec"), {"__name__": "__snippet__"})
