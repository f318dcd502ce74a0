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
