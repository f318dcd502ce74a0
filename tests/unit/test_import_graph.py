"""The import graph of the package has no circles, at module or at package level.

Every import counts, including lazy ones inside functions and ``TYPE_CHECKING`` blocks:
a circle that only type checkers see still couples the two modules. Packages form
layers (see docs/architecture.md): no package imports one that imports it back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import primflow

ROOT = Path(primflow.__file__).parent


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = ("primflow", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(_resolve(a.name, modules) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else _resolve(base, modules))
    found.discard(module)
    return {name for name in found if name.startswith("primflow")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_module_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_no_package_import_circles() -> None:
    packages: dict[str, set[str]] = {}
    for module, imported in _graph().items():
        if module == "primflow":  # the top level re-exports the public API
            continue
        targets = {_package(name) for name in imported if name != "primflow"}
        packages.setdefault(_package(module), set()).update(targets - {_package(module)})
    assert _cycles(packages) == []


def test_graph_is_pure_data() -> None:
    """The IR imports nothing of primflow outside graph/ but the value types."""
    allowed = {"primflow.graph", "primflow.values"}
    for module, imported in _graph().items():
        if _package(module) == "primflow.graph":
            assert {_package(name) for name in imported} <= allowed, module


def test_engines_do_not_import_the_runtime_or_above() -> None:
    above = {"primflow.runtime", "primflow.session", "primflow.commands", "primflow.api"}
    for module, imported in _graph().items():
        if _package(module) == "primflow.engines":
            assert not {_package(name) for name in imported} & above, module


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
