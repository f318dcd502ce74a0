"""docs/guide/extending.md on the real engines: the user's hashing embedder serves
naive_rag and the HyDE app next to the real LLM and FAISS index (the page's "real
engines" block, after the snippets that define what it uses)."""

from __future__ import annotations

import pytest
from guide_blocks import blocks, run

from primflow import Answer

pytestmark = pytest.mark.engines

PAGE = "docs/guide/extending.md"


def test_the_pages_real_engine_snippet_runs() -> None:
    page_blocks = blocks(PAGE)
    snippets = [b for b in page_blocks if b.title is None]
    (real,) = [b for b in page_blocks if b.title == "real engines"]
    namespace = run([*snippets, real], PAGE)
    plain, hyde = namespace["plain"], namespace["hyde"]
    assert isinstance(plain, Answer) and isinstance(hyde, Answer)
    assert plain.app == "naive_rag" and hyde.app == "hyde_rag"
