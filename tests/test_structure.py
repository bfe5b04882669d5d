"""The code's layering, checked by parsing imports: altoolkit/ is the ground floor and never imports the design's
top-level files, no module imports itself back through a cycle, and no source file outgrows a reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = {"AL_functions", "AL_cycle", "train", "label", "Evaluation", "benchmarks", "docs", "tests"}
MAX_SOURCE_LINES = 600


def source_files() -> list[Path]:
    folders = ("altoolkit", "Evaluation", "benchmarks", "docs")
    files = [REPO / f"{name}.py" for name in ("AL_functions", "AL_cycle", "train", "label")]
    return files + sorted(file for folder in folders for file in (REPO / folder).rglob("*.py"))


def module_name(file: Path) -> str:
    parts = list(file.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(file: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions (a lazy import is still a dependency)."""
    names = set()
    package = module_name(file).rsplit(".", 1)[0] if file.name != "__init__.py" else module_name(file)
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def project_graph() -> dict[str, set[str]]:
    modules = {module_name(file): file for file in source_files()}
    return {name: {imported for imported in imported_modules(file) if imported in modules and imported != name}
            for name, file in modules.items()}


def test_altoolkit_never_imports_a_top_level_file():
    offending = {name: sorted(imported for imported in imports if imported.split(".")[0] in TOP_LEVEL)
                 for name, imports in project_graph().items() if name.startswith("altoolkit")}
    assert {name: found for name, found in offending.items() if found} == {}


def test_no_import_cycle_between_project_modules():
    graph = project_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for neighbour in sorted(graph[node]):
            if state.get(neighbour) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(neighbour):] + [neighbour]))
            if neighbour not in state:
                visit(neighbour, path + [neighbour])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_no_source_file_is_longer_than_a_reader_can_hold():
    long_files = {str(file.relative_to(REPO)): count for file in source_files()
                  if (count := len(file.read_text(encoding="utf-8").splitlines())) > MAX_SOURCE_LINES}
    assert long_files == {}
