"""References from the code to documentation stay valid and inside the repository.

A docstring or help text that names ``docs/<page>.md`` must name a page that exists, and
nothing tracked may point a reader at design notes outside the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC_PAGE = re.compile(r"docs/[A-Za-z0-9_./-]+\.md")
# The project's design notes live outside the repository, so a reader of it cannot follow
# a reference to them. Their names as bare references (not part of a longer path or name:
# ``docs/guide/stack.md`` or ``my_stack.md`` would not match), a note's numbered pitfall
# or section (``P10``, ``§5.5``) after one, and "design §N".
DESIGN_NOTES = ("stack", "placement", "system", "users", "style")
DESIGN_REFERENCE = re.compile(
    r"shared/design"
    r"|(?<![\w./-])(?:" + "|".join(DESIGN_NOTES) + r")\.md(?![\w-]|\.\w)"
    r"|\bdesign (?:notes? )?§ ?\d"
)
BINARY_SUFFIXES = {".png", ".jpg", ".gguf", ".onnx", ".whl", ".ico", ".woff", ".woff2"}


def _tracked(*patterns: str) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / line for line in out.splitlines() if line]


def test_doc_pages_named_in_code_exist() -> None:
    missing = []
    for path in _tracked("primflow", "bench", "scripts", "Makefile"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for page in DOC_PAGE.findall(line):
                if not (ROOT / page).is_file():
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {page}")
    assert missing == []


def test_nothing_points_outside_the_repository() -> None:
    outside = []
    for path in _tracked():
        if path.suffix in BINARY_SUFFIXES or path == Path(__file__).resolve():
            continue
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if match := DESIGN_REFERENCE.search(line):
                outside.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert outside == [], "state the fact itself, or link a page under docs/"


def test_the_design_note_names_are_not_files_of_the_repository() -> None:
    """Else a bare ``placement.md`` could be a legitimate link and the pattern too wide."""
    names = {path.name for path in _tracked()}
    assert not {f"{note}.md" for note in DESIGN_NOTES} & names


@pytest.mark.parametrize(
    ("line", "is_outside"),
    [
        ("keeps chunked prefill bit-exact (stack.md P5)", True),
        ("idle threads steal cores (placement.md).", True),
        ("see ../shared/design/system.md", True),
        ("dependent pre-scheduling, design §5.5", True),
        ("`users.md` says so", True),
        ("see docs/guide/stack.md", False),
        ("[engines](../guide/engines.md#placement)", False),
        ("saved as my_style.md or system.md.bak", False),
        ("the paper's §7 ablation", False),
    ],
)
def test_the_design_reference_pattern(line: str, is_outside: bool) -> None:
    assert bool(DESIGN_REFERENCE.search(line)) is is_outside
