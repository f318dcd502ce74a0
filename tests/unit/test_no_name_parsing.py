"""The scheduling plan and the bound code derive nothing from node names.

What a node is (a stage, a piece of which p-graph node, its share) is its provenance
(tests/unit/test_provenance.py checks the behaviour). These modules handle no text but
node and port names, so any regex or string slicing in them would be parsing names:
this guard fails if one comes back (it once was ``_STAGE_NAME = re.compile(...)`` in
plan.py and suffix stripping in solo_bound.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import primflow

PACKAGE = Path(primflow.__file__).resolve().parent
NAME_BLIND_MODULES = ("runtime/plan.py", "session/solo_bound.py", "session/timing.py")
SLICING_METHODS = frozenset(
    {
        "split",
        "rsplit",
        "partition",
        "rpartition",
        "removesuffix",
        "removeprefix",
        "startswith",
        "endswith",
        "rstrip",
        "lstrip",
        "rfind",
        "find",
        "rindex",
    }
)


def _violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            )
            found.extend(f"line {node.lineno}: imports re" for m in modules if m in ("re", "regex"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in SLICING_METHODS:
                found.append(f"line {node.lineno}: calls .{node.func.attr}()")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            found.append(f"line {node.lineno}: slices a sequence")
    return found


@pytest.mark.parametrize("module", NAME_BLIND_MODULES)
def test_plan_and_bound_code_parse_no_names(module: str) -> None:
    assert _violations((PACKAGE / module).read_text()) == []


def test_the_guard_sees_what_the_old_code_did() -> None:
    old = (
        "import re\n"
        "STAGE = re.compile(r'^(?P<base>.+)\\.s(?P<index>\\d+)$')\n"
        "def origin(name):\n"
        "    return name.rsplit('.', 1)[0]\n"
        "def base(name):\n"
        "    return name[:-3]\n"
    )
    assert sorted(_violations(old)) == [
        "line 1: imports re",
        "line 4: calls .rsplit()",
        "line 6: slices a sequence",
    ]


# Every module that schedules or bounds work. Some handle text or token values (prompt
# templates, decisions, token lists), so for these the guard looks only at what names
# things: no slicing method or slice may be applied to an expression that mentions a
# name or an id (``node.name.split('.')``, ``name[:-3]``, ``request.node.startswith``).
SCHEDULING_PACKAGES = ("runtime", "passes", "sim")
SCHEDULING_MODULES = ("engines/scheduler.py", "engines/policies.py")
NAME_WORDS = frozenset(
    {"name", "names", "node", "node_id", "nodes", "query_id", "request_id", "llm_request_id"}
)


def _mentions_a_name(expr: ast.AST) -> bool:
    for sub in ast.walk(expr):
        if isinstance(sub, ast.Name) and sub.id in NAME_WORDS:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in NAME_WORDS:
            return True
    return False


def _name_violations(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in SLICING_METHODS and _mentions_a_name(node.func.value):
                found.append(f"line {node.lineno}: .{node.func.attr}() on a name")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Slice)
            and _mentions_a_name(node.value)
        ):
            found.append(f"line {node.lineno}: slices a name")
    return found


def _scheduling_modules() -> list[str]:
    found = [
        str(path.relative_to(PACKAGE))
        for package in SCHEDULING_PACKAGES
        for path in sorted((PACKAGE / package).glob("*.py"))
    ]
    found += list(SCHEDULING_MODULES)
    found += [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.glob("engines/*/scheduler*.py"))]
    return found


@pytest.mark.parametrize("module", _scheduling_modules())
def test_scheduling_code_slices_no_names(module: str) -> None:
    assert _name_violations((PACKAGE / module).read_text()) == []


def test_the_name_guard_sees_name_parsing_and_lets_values_be() -> None:
    parsing = (
        "def stage(node):\n"
        "    return node.name.rsplit('.', 1)[0]\n"
        "def base(name):\n"
        "    return name[:-3]\n"
        "def is_stage(request):\n"
        "    return request.node.startswith('embed')\n"
    )
    assert sorted(_name_violations(parsing)) == [
        "line 2: .rsplit() on a name",
        "line 4: slices a name",
        "line 6: .startswith() on a name",
    ]
    values = "def kept(seq, n, text):\n    return seq.tokens[:n], text.startswith('yes')\n"
    assert _name_violations(values) == []
