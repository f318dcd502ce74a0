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
    for path in _tracked("primflow", "bench", "scripts", "docs", "tests", "README.md"):
        if path.suffix in {".png", ".json"} or path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "shared/design" in text:
            outside.append(str(path.relative_to(ROOT)))
    assert outside == []
