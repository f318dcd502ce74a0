"""Function components and an engine under a name of one's own on the real embedded
engines: the guide's keyword-filter app answers over samples/docs with MiniLM, FAISS,
the MiniLM reranker and SmolLM2, once embedding with the stock embedder and once with
the user's hashing embedder under the name ``hashing``."""

from __future__ import annotations

import pytest
from guide_blocks import blocks, run

from primflow import Answer
from primflow.testing.examples.hashing_embedder import words

pytestmark = pytest.mark.engines

PAGE = "docs/guide/extending.md"
QUESTION = "How many days of paid annual leave do employees get?"


def test_the_keyword_filter_and_a_named_engine_run_on_the_real_engines() -> None:
    page_blocks = blocks(PAGE)
    # The definitions the block uses (the fakes' snippets define no engines it runs).
    snippets = [b for b in page_blocks if b.title is None]
    (functions,) = [b for b in page_blocks if b.title == "real engines, functions"]
    namespace = run([*snippets, functions], PAGE)
    stock, mine = namespace["stock"], namespace["mine"]
    assert isinstance(stock, Answer) and isinstance(mine, Answer)
    asked = set(words(QUESTION))
    for answer in (stock, mine):
        assert answer.text.strip()
        kept = answer.outputs["kept"]
        assert kept and all(asked & set(words(hit.chunk.text)) for hit in kept)
        assert len(answer.passages) == 2  # reranked down to rerank_top_k
        assert answer.passages[0].chunk.source.endswith("handbook_leave.md")
        assert answer.graph.node("keyword_filter").engine == "python"
    assert stock.graph.node("embed_question").engine == "embedder"
    assert mine.graph.node("embed_question").engine == "hashing"
