"""The packages depend on each other one way.

``benchmarks`` and ``pipelines`` may use ``processors``, which may use
``framework``; never the other way. Every import counts, including those inside
functions and under ``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("framework", "processors", "pipelines", "benchmarks")
ALLOWED = {
    "framework": {"framework"},
    "processors": {"framework", "processors"},
    "pipelines": {"framework", "processors", "pipelines"},
    "benchmarks": {"framework", "processors", "pipelines", "benchmarks"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (a package import counts as its ``__init__``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


Graph = dict[str, set[str]]


def _graph() -> Graph:
    """Module name -> the project modules it imports.

    A package's ``__init__`` importing its own submodules (to re-export them) is
    not an edge: a submodule that imports its package's other modules does not
    depend on the ``__init__`` that lists it.
    """
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    graph: Graph = {}
    for path in files:
        name = _module_name(path)
        graph[name] = {t for t in _imports(path, modules) if not t.startswith(name + ".")}
    return graph


def _reachable(graph: Graph, start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_graph_sees_the_imports() -> None:
    graph = _graph()
    assert "pipelines.shipped" in graph["pipelines.cli"]
    assert "processors.llm.base" in graph["processors.llm.llama_cpp"]
    assert len(graph) > 100
    assert _reachable({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == {"a", "b", "c"}


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_one_way(package: str) -> None:
    graph = _graph()
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        for b in targets
        if a.split(".")[0] == package and b.split(".")[0] not in ALLOWED[package]
    )
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    """No module imports a module that imports it back, directly or through others."""
    graph = _graph()
    cycles = sorted(
        f"{a} -> {b} -> ... -> {a}"
        for a, targets in graph.items()
        for b in targets
        if a in _reachable(graph, b)
    )
    assert not cycles, "modules that import each other:\n" + "\n".join(cycles)
