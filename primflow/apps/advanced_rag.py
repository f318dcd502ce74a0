"""Document QA with advanced RAG (paper §7): naive RAG plus query expansion into
``num_expansions`` queries, a search per query (16 passages each), reranking to an overall
top-k and refine-mode synthesis. Expansion and synthesis share the core LLM.

The original question keeps its own embed -> search -> rerank branch next to the
expanded queries' (small models write poor queries), and the two reranked
lists merge into the overall top-k.
"""

from __future__ import annotations

from primflow.api.components import (
    Aggregate,
    ChunkDocuments,
    Embed,
    ExpandQuery,
    Ingest,
    Rerank,
    Synthesize,
    VectorSearch,
)
from primflow.api.config import QueryConfig, SynthesisMode
from primflow.api.template import Template, build_template
from primflow.apps.app import App
from primflow.apps.samples import sample_documents
from primflow.graph.ops import AggregateMode


def build() -> Template:
    indexing = (
        ChunkDocuments(chunks="chunks")
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
    )
    expand = ExpandQuery(question="question", queries="queries")
    original = (
        Embed("embed_question", items="question_list", vectors="question_vectors")
        >> VectorSearch("search_question", vectors="question_vectors", hits="question_hits")
        >> Rerank("rerank_question", hits="question_hits", reranked="question_reranked")
    )
    expanded = (
        Embed("embed_queries", items="queries", vectors="query_vectors")
        >> VectorSearch("search_queries", vectors="query_vectors", hits="query_hits")
        >> Rerank("rerank_queries", hits="query_hits", reranked="query_reranked")
    )
    merge = Aggregate(
        "merge",
        parts=["question_reranked", "query_reranked"],
        result="passages",
        mode=AggregateMode.TOP_K,
    )
    synthesize = Synthesize(question="question", context="passages", answer="answer")
    flow = indexing >> expand >> [original, expanded] >> merge >> synthesize
    return build_template("advanced_rag", flow, outputs={"answer": "answer", "hits": "passages"})


APP = App(
    name="advanced_rag",
    description="document QA: query expansion, per-query search and rerank, refine synthesis",
    build=build,
    default_config=QueryConfig(
        top_k=16, rerank_top_k=3, num_expansions=3, synthesis_mode=SynthesisMode.REFINE
    ),
    sample_question="What does the paper report about end-to-end speedup?",
    sample_documents=sample_documents,
    # Small chunks give the sample query a few hundred of them, enough for stage
    # decomposition of document embedding with the default embedder profile.
    sample_config_changes={"chunk_size": 100, "chunk_overlap": 10},
)
