"""docs/guide/python-api.md cannot go stale: its snippets run, in order, on the fakes
(the "real engines" block, collections, runs in tests/engines/test_python_api.py)."""

from __future__ import annotations

import pytest
from guide_blocks import blocks, run

from primflow import Answer

PAGE = "docs/guide/python-api.md"


def test_the_pages_snippets_run_on_the_fakes(capsys: pytest.CaptureFixture[str]) -> None:
    page_blocks = blocks(PAGE)
    snippets = [b for b in page_blocks if b.title is None]
    assert len(snippets) == 4
    assert [b.title for b in page_blocks if b.title is not None] == ["real engines"]
    namespace = run(snippets, PAGE)
    answer = namespace["answer"]
    assert isinstance(answer, Answer) and answer.passages
    assert namespace["streamed_text"] == answer.text
    out = capsys.readouterr().out
    assert "ms, path: [" in out
    # first_words(question, 2) left the stream after two tokens of the same answer
    expected = [word + " " for word in answer.text.split(" ")[:2]]
    assert out.splitlines()[-1].endswith(repr(expected))
