"""The code blocks of a guide page, so tests can run them and check the files it shows.

A fenced block opened with ```python runs as written; ```python title="<path>" shows a
file of the repository and must equal it; any other title names a block that a test
runs on purpose (e.g. "real engines", run in the engine tier).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r'^```python(?: title="([^"]*)")?\n(.*?)^```$', re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    title: str | None
    code: str


def blocks(page: str) -> list[Block]:
    text = (ROOT / page).read_text(encoding="utf-8")
    return [Block(title or None, code) for title, code in FENCE.findall(text)]


def run(code_blocks: list[Block], where: str) -> dict[str, object]:
    """Run the blocks in order in one namespace, as a reader pasting them would."""
    namespace: dict[str, object] = {"__name__": "guide"}
    for i, block in enumerate(code_blocks):
        exec(compile(block.code, f"{where} block {i}", "exec"), namespace)
    return namespace
