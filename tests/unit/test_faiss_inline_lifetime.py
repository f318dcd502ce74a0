"""Deadlines and cancellation with the real FAISS engine, whose small work runs inline on
the event loop (``ThreadedEngine.runs_inline``): a query that ends while it waits on
another engine loses its collection at once, its late requests are refused inline (and
leave nothing behind), and a sibling query is served as usual."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from graphs import GraphBuilder

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.vector import FaissEngine
from primflow.graph import ops
from primflow.graph.ir import Graph, Op, PortType
from primflow.runtime import QueryCancelled, QueryTimeout, Runtime
from primflow.testing.fakes import FakeEmbedder
from primflow.values import Chunk, seal_chunks

NUM_CHUNKS = 12


def retrieval_graph() -> Graph:
    """chunks -> embed -> ingest; question -> embed (after the ingest) -> search -> hits."""
    b = GraphBuilder()
    chunks = b.input("chunks", PortType.CHUNKS, NUM_CHUNKS)
    docs = b.embed("embed_docs", (chunks, ops.VALUE), NUM_CHUNKS)
    index = b.ingest("ingest", (chunks, ops.VALUE), (docs, ops.VECTORS), NUM_CHUNKS)
    question = b.input("question", PortType.TEXTS, 1)
    asked = b.embed("embed_q", (question, ops.VALUE), 1, PortType.TEXTS)
    b.graph.order(index, asked)  # the collection exists while the question waits
    b.output("hits", (b.search("search", (asked, ops.VECTORS), (index, ops.INDEX), 1), ops.HITS))
    return b.graph


def inputs() -> dict[str, object]:
    chunks = seal_chunks(Chunk(f"passage {i}", "doc", i) for i in range(NUM_CHUNKS))
    return {"chunks": chunks, "question": ["passage 3"]}


def engines() -> tuple[FakeEmbedder, FaissEngine]:
    return FakeEmbedder("embedder", latency_scale=0.0), FaissEngine("vectors")


async def ingest_late(vectors: FaissEngine, query_id: str) -> BaseException | None:
    """An ingest of the ended query, submitted directly: small, so it runs inline."""
    chunks = seal_chunks([Chunk("late", "doc", 0)])
    request = EngineRequest(
        query_id,
        "ingest",
        Op.VECTOR_INGEST,
        {"chunks": chunks, "vectors": np.ones((1, 32), np.float32)},
        {"collection": "docs"},
    )
    [future] = vectors.submit([request])
    assert future.done()  # it ran inline, in submit
    return future.exception()


async def served(runtime: Runtime) -> list[int]:
    result = await runtime.run(retrieval_graph(), inputs(), query_id="q2")
    return [hit.chunk.chunk_id for hit in result.outputs["hits"]]


async def test_a_deadline_frees_the_inline_collection_and_refuses_late_work() -> None:
    embedder, vectors = engines()
    embedder.block("embed_q", query_id="q1")
    async with Runtime({"embedder": embedder, "vectors": vectors}) as runtime:
        query = runtime.run(retrieval_graph(), inputs(), query_id="q1", deadline_s=0.2)
        with pytest.raises(QueryTimeout, match="'q1' missed its deadline"):
            await query
        assert vectors.collection_names() == []  # the inline ingest's collection is gone
        late = await ingest_late(vectors, "q1")
        assert isinstance(late, EngineError) and "has ended" in str(late)
        assert vectors.collection_names() == []
        assert (await served(runtime))[0] == 3  # FakeEmbedder: same text, same vector
    await vectors.close()


async def test_cancelling_a_query_frees_its_inline_collection() -> None:
    embedder, vectors = engines()
    embedder.block("embed_q", query_id="q1")
    async with Runtime({"embedder": embedder, "vectors": vectors}) as runtime:
        query = asyncio.ensure_future(runtime.run(retrieval_graph(), inputs(), query_id="q1"))
        await embedder.entered("embed_q", "q1").wait()
        assert vectors.collection_names() == ["q1/docs"]  # ingested inline
        assert runtime.cancel("q1")
        with pytest.raises(QueryCancelled):
            await query
        assert vectors.collection_names() == []
        late = await ingest_late(vectors, "q1")
        assert isinstance(late, EngineError) and "has ended" in str(late)
        assert vectors.collection_names() == []
        assert (await served(runtime))[0] == 3
    await vectors.close()
