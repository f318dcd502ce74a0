"""Contextual retrieval (Anthropic; paper §7): before indexing, the LLM situates each
chunk using its neighbouring chunks; each chunk is embedded as "its context + its text"
and indexed with the original chunk (hits quote the chunk alone); search fetches more
passages (top 32), rerank keeps 3, one LLM call answers."""

from __future__ import annotations

from primflow.api.components import (
    ChunkDocuments,
    Embed,
    Ingest,
    Rerank,
    Situate,
    Synthesize,
    VectorSearch,
)
from primflow.api.config import QueryConfig, SynthesisMode
from primflow.api.template import Template, build_template
from primflow.apps.app import App
from primflow.apps.samples import sample_documents


def build() -> Template:
    flow = (
        ChunkDocuments(chunks="chunks")
        >> Situate(chunks="chunks", situated="situated")
        >> Embed("embed_docs", items="situated", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
        >> Embed("embed_question", items="question_list", vectors="question_vectors")
        >> VectorSearch(vectors="question_vectors", index="index", hits="hits")
        >> Rerank(query="question", hits="hits", reranked="passages")
        >> Synthesize(question="question", context="passages", answer="answer")
    )
    return build_template(
        "contextual_retrieval", flow, outputs={"answer": "answer", "hits": "passages"}
    )


APP = App(
    name="contextual_retrieval",
    description="chunks situated by the LLM before indexing; fetch 32, rerank to 3, one shot",
    build=build,
    default_config=QueryConfig(
        top_k=32, rerank_top_k=3, num_neighbours=4, synthesis_mode=SynthesisMode.ONE_SHOT
    ),
    sample_question="How long is the warranty on the Tidepool Marine model?",
    # One document keeps the sample graph small: every chunk costs an LLM call.
    sample_documents=lambda: sample_documents("product_faq.md"),
    sample_config_changes={"chunk_size": 600, "chunk_overlap": 0},
)
