"""A user's own Python step, a keyword filter, between search and rerank.

``keyword_filter`` is a plain function made a component by ``@function``: its
parameters are its input ports (the question, the search's hits), its keyword-only
``min_shared_words`` a setting, its return annotation the output port. It runs on the
``python`` function engine (a thread pool). It keeps the hits that share at least
``min_shared_words`` words with the question (stop words aside) and, so the reranker
is never left empty-handed, all of them when none does.

``build_keyword_rag`` is naive RAG with that step and a reranker: search a wide
``top_k``, filter, rerank to ``rerank_top_k``, synthesize. ``embedder`` names the
engine that embeds; an engine name of your own (the guide's ``hashing``) is declared
to the stack with its kind (``EngineStack.for_apps(..., custom_engines=...)``).
"""

from __future__ import annotations

from primflow import (
    App,
    ChunkDocuments,
    Embed,
    Ingest,
    QueryConfig,
    Rerank,
    Synthesize,
    Template,
    VectorSearch,
    build_template,
    function,
)
from primflow.api.config import SynthesisMode
from primflow.testing.examples.hashing_embedder import words
from primflow.values import Hit


@function
def keyword_filter(question: str, hits: list[Hit], *, min_shared_words: int = 1) -> list[Hit]:
    """The hits sharing at least ``min_shared_words`` words with the question (all of
    them when none does), in their search order."""
    wanted = set(words(question))
    kept = [h for h in hits if len(wanted & set(words(h.chunk.text))) >= min_shared_words]
    return kept or list(hits)


def build_keyword_rag(embedder: str = "embedder") -> Template:
    """Chunk, embed, index; embed the question, search, keyword-filter, rerank, answer."""
    flow = (
        ChunkDocuments(chunks="chunks")
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors", engine=embedder)
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
        >> Embed("embed_question", items="question_list", vectors="qv", engine=embedder)
        >> VectorSearch(vectors="qv", index="index", hits="hits")
        >> keyword_filter(reads={"hits": "hits"}, writes={"result": "kept"})
        >> Rerank(query="question", hits="kept", reranked="best")
        >> Synthesize(question="question", context="best", answer="answer")
    )
    outputs = {"answer": "answer", "hits": "best", "kept": "kept"}
    return build_template("keyword_rag", flow, outputs=outputs)


KEYWORD_RAG = App(
    "keyword_rag",
    build_keyword_rag,
    description="document QA: search wide, keep passages sharing the question's words, rerank",
    default_config=QueryConfig(top_k=6, rerank_top_k=2, synthesis_mode=SynthesisMode.ONE_SHOT),
)


def build_hashing_keyword_rag() -> Template:
    """keyword_rag embedding on an engine of the user's own name, ``hashing``."""
    return build_keyword_rag(embedder="hashing")


HASHING_KEYWORD_RAG = App(
    "hashing_keyword_rag",
    build_hashing_keyword_rag,
    description="keyword_rag, embedding on the user's hashing engine",
    default_config=QueryConfig(top_k=6, rerank_top_k=2, synthesis_mode=SynthesisMode.ONE_SHOT),
)
