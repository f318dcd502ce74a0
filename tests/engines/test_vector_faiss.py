"""FAISS index engine: ingest/search semantics, batch fusion, per-query lifetime, errors."""

import asyncio

import numpy as np
import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.vector import FaissEngine
from primflow.engines.vector.faiss_engine import MAX_INLINE_INGEST_ROWS
from primflow.graph.ir import Op
from primflow.values import Chunk, IndexHandle

pytestmark = pytest.mark.engines

DIM = 16


def corpus(num_items: int, seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((num_items, DIM)).astype(np.float32)
    chunks = [Chunk(f"text {i}", f"doc{i % 3}", i) for i in range(num_items)]
    return chunks, vectors


def ingest(query_id: str, chunks, vectors, collection: str = "docs") -> EngineRequest:
    inputs = {"chunks": chunks, "vectors": vectors}
    return EngineRequest(query_id, "ingest", Op.VECTOR_INGEST, inputs, {"collection": collection})


def search(query_id: str, vectors, index, top_k: int = 3, node: str = "search") -> EngineRequest:
    inputs = {"vectors": vectors, "index": index}
    return EngineRequest(query_id, node, Op.VECTOR_SEARCH, inputs, {"top_k": top_k})


async def run(engine: FaissEngine, *requests: EngineRequest) -> list:
    return await asyncio.gather(*engine.submit(list(requests)), return_exceptions=True)


async def test_ingest_then_search_finds_the_nearest_chunks() -> None:
    engine = FaissEngine()
    chunks, vectors = corpus(50)
    [out] = await run(engine, ingest("q1", chunks, vectors))
    handle = out["index"]
    assert handle == IndexHandle("vector", "q1/docs", 50)
    # A query equal to chunk 7's vector must find chunk 7 first with cosine 1.
    [found] = await run(engine, search("q1", vectors[7:8] * 3.0, handle))
    assert found["hits"][0].chunk.chunk_id == 7
    assert found["hits"][0].score == pytest.approx(1.0, abs=1e-5)
    scores = [h.score for h in found["hits"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    expected = np.argsort(
        -(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        @ (vectors[7] / np.linalg.norm(vectors[7]))
    )[:3]
    assert [h.chunk.chunk_id for h in found["hits"]] == list(expected)


async def test_several_query_vectors_merge_dedupe_keep_best_score() -> None:
    engine = FaissEngine()
    chunks, vectors = corpus(30)
    [out] = await run(engine, ingest("q1", chunks, vectors))
    [found] = await run(
        engine, search("q1", np.stack([vectors[2], vectors[2], vectors[9]]), out["index"], top_k=4)
    )
    ids = [h.chunk.chunk_id for h in found["hits"]]
    assert len(ids) == len(set(ids))
    assert set(ids[:2]) == {2, 9}
    # top_k applies per query vector: the union of each vector's own top 4.
    for row in (2, 9):
        [alone] = await run(engine, search("q1", vectors[row][None, :], out["index"], top_k=4))
        assert {h.chunk.chunk_id for h in alone["hits"]} <= set(ids)
    assert 4 <= len(ids) <= 8


async def test_fused_searches_equal_separate_searches() -> None:
    engine = FaissEngine()
    chunks, vectors = corpus(40)
    [out] = await run(engine, ingest("q1", chunks, vectors))
    rng = np.random.default_rng(5)
    queries = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (1, 3, 2)]
    jobs = list(zip(queries, [2, 5, 3], strict=True))
    fused = await run(
        engine,
        *[search("q1", q, out["index"], k, f"s{i}") for i, (q, k) in enumerate(jobs)],
    )
    for i, (q, k) in enumerate(jobs):
        [alone] = await run(engine, search("q1", q, out["index"], k))
        assert [h.chunk.chunk_id for h in fused[i]["hits"]] == [
            h.chunk.chunk_id for h in alone["hits"]
        ]
        assert k <= len(fused[i]["hits"]) <= k * len(q)


async def test_pipelined_ingests_append_to_one_collection_and_hnsw_above_threshold() -> None:
    engine = FaissEngine(hnsw_threshold=60)
    chunks, vectors = corpus(100)
    for start in range(0, 100, 25):
        [out] = await run(
            engine, ingest("q1", chunks[start : start + 25], vectors[start : start + 25])
        )
    assert out["index"].num_items == 100
    collection = engine._collections["q1/docs"]
    assert collection.is_hnsw
    [found] = await run(engine, search("q1", vectors[80:81], out["index"], top_k=1))
    assert found["hits"][0].chunk.chunk_id == 80


async def test_release_and_abort_free_per_query_collections_but_not_shared() -> None:
    engine = FaissEngine()
    chunks, vectors = corpus(10)
    shared = engine.create_shared("wiki", chunks, vectors)
    await run(engine, ingest("q1", chunks, vectors), ingest("q2", chunks, vectors))
    assert engine.collection_names() == ["q1/docs", "q2/docs", "wiki"]
    engine.release("q1")
    engine.abort("q2")
    assert engine.collection_names() == ["wiki"]
    # Late work for an ended query is refused, and nothing is recreated.
    [late] = await run(engine, ingest("q2", chunks, vectors))
    assert isinstance(late, EngineError) and "query has ended" in str(late)
    assert engine.collection_names() == ["wiki"]
    [found] = await run(engine, search("q3", vectors[0:1], shared, top_k=1))
    assert found["hits"][0].chunk.chunk_id == 0


async def test_abort_cancels_queued_futures() -> None:
    engine = FaissEngine()
    chunks, vectors = corpus(MAX_INLINE_INGEST_ROWS + 1)  # too large to run inline
    futures = engine.submit([ingest("q9", chunks, vectors)])
    engine.abort("q9")
    assert futures[0].cancelled()
    await asyncio.sleep(0.05)
    assert engine.collection_names() == []
    # A small ingest ran inline (done at once); aborting its query frees its collection.
    [done] = engine.submit([ingest("q8", chunks[:10], vectors[:10])])
    assert done.done() and engine.collection_names() == ["q8/docs"]
    engine.abort("q8")
    assert engine.collection_names() == []


async def test_bad_requests_fail_alone_and_the_engine_keeps_serving() -> None:
    engine = FaissEngine()
    chunks, vectors = corpus(10)
    [out] = await run(engine, ingest("q1", chunks, vectors))
    handle = out["index"]
    bad = await run(
        engine,
        search("q1", np.ones((1, DIM + 1)), handle, node="wrong_dim"),
        search("q1", np.ones((1, DIM)), IndexHandle("vector", "q1/nope"), node="unknown"),
        search("q1", np.ones((1, DIM)), IndexHandle("other", "q1/docs"), node="other_engine"),
        ingest("q1", chunks, vectors, collection="bad name; drop"),
        ingest("q1", chunks[:3], vectors),
        ingest("q1", chunks, vectors[:, :8]),
        search("q1", np.ones((1, DIM)), handle, node="good"),
    )
    messages = [str(e) for e in bad[:6]]
    assert all(isinstance(e, EngineError) for e in bad[:6])
    assert "dimension 17" in messages[0] and "wrong_dim" in messages[0]
    assert "no collection 'q1/nope'" in messages[1]
    assert "lives on engine 'other'" in messages[2]
    assert "must match" in messages[3]
    assert "3 chunks but 10 vectors" in messages[4]
    assert "dimension 8" in messages[5]
    assert len(bad[6]["hits"]) == 3


async def test_small_work_runs_inline_and_large_work_on_the_engine_thread() -> None:
    """An ingest and a one-vector search are cheaper than the hop to the engine thread:
    their futures are done when ``submit`` returns. An ingest past the inline limit goes
    to the thread; a small ingest submitted behind it waits for it (submission order),
    so it appends to what the large one added."""
    engine = FaissEngine()
    chunks, vectors = corpus(50)
    [ingested] = engine.submit([ingest("q1", chunks, vectors)])
    assert ingested.done()
    [searched] = engine.submit([search("q1", vectors[:1], ingested.result()["index"])])
    assert searched.done() and searched.result()["hits"][0].chunk.chunk_id == 0

    big_chunks, big_vectors = corpus(MAX_INLINE_INGEST_ROWS + 1, seed=1)
    [big] = engine.submit([ingest("q2", big_chunks, big_vectors)])
    [small] = engine.submit([ingest("q2", chunks, vectors)])
    assert not big.done() and not small.done()
    assert (await small)["index"].num_items == MAX_INLINE_INGEST_ROWS + 1 + 50
    await big
    await engine.close()


async def test_work_on_the_engine_thread_keeps_later_small_batches_off_the_loop() -> None:
    """A search submitted while ``add_shared`` is queued on the engine thread does not
    run inline ahead of it: it finds the rows that call adds."""
    engine = FaissEngine()
    chunks, vectors = corpus(20)
    engine.create_shared("kb", chunks, vectors)
    more_vectors = corpus(20, seed=1)[1]
    more = [Chunk(f"more {i}", "more", 100 + i) for i in range(20)]
    adding = asyncio.ensure_future(engine.add_shared("kb", more, more_vectors))
    await asyncio.sleep(0)  # add_shared is now queued on the engine thread
    handle = IndexHandle("vector", "kb", 40)
    [found] = engine.submit([search("q1", more_vectors[3:4], handle)])
    assert not found.done()
    assert (await found)["hits"][0].chunk.chunk_id == 103
    await adding
    [again] = engine.submit([search("q1", more_vectors[3:4], handle)])
    assert again.done()
    await engine.close()
