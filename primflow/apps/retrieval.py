"""The retrieval front that several built-in apps share: chunk the query's documents,
embed and index them, embed the question and search its top-k hits (channel ``hits``).

A function rather than a component so each app's graph keeps the same primitive names
(``embed_docs``, ``ingest``, ``embed_question``, ``search``) and its goldens stay put."""

from __future__ import annotations

from primflow.api.component import Flow
from primflow.api.components import ChunkDocuments, Embed, Ingest, VectorSearch


def document_search() -> Flow:
    """Chunk -> embed -> ingest, then embed the question -> search; writes ``hits``."""
    return (
        ChunkDocuments(chunks="chunks")
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
        >> Embed("embed_question", items="question_list", vectors="question_vectors")
        >> VectorSearch(vectors="question_vectors", index="index", hits="hits")
    )
