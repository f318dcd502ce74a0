"""docs/guide/extending.md cannot go stale: the files it shows are the example modules,
byte for byte, and its snippets run (on the fakes; the real-engine one in the engine
tier, tests/engines/test_guide_engines.py)."""

from __future__ import annotations

import pytest
from guide_blocks import ROOT, blocks, run

PAGE = "docs/guide/extending.md"
SHOWN_FILES = {
    "primflow/testing/examples/hashing_embedder.py",
    "primflow/testing/examples/hyde.py",
}


def test_the_page_shows_the_example_modules_as_they_are() -> None:
    shown = {b.title: b.code for b in blocks(PAGE) if b.title and "/" in b.title}
    assert set(shown) == SHOWN_FILES
    for path, code in shown.items():
        assert code == (ROOT / path).read_text(encoding="utf-8"), f"{PAGE} shows a stale {path}"


def test_the_pages_snippets_run_on_the_fakes(capsys: pytest.CaptureFixture[str]) -> None:
    snippets = [b for b in blocks(PAGE) if b.title is None]
    assert len(snippets) == 4
    namespace = run(snippets, PAGE)
    assert namespace["food"] is not None and namespace["expenses"] is not None
    assert "optimized in" in capsys.readouterr().out
