"""The FAISS engine's fused inline step for a batch of one (``run_one_inline``): an
ingest or a search submitted alone gives what ``run_batch`` gives, with the same checks
and messages, and work that is not small, an ended query or a budget that counts the
engine take the general paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.unit_vectors import seal_unit_rows
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.values import Chunk, IndexHandle, seal_chunks

DIM = 16
NUM_ROWS = 40


def rows(seed: int, num_rows: int = NUM_ROWS) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((num_rows, DIM)).astype(np.float32)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def ingest(query: str, vectors: Any, chunks: Any = None, name: Any = "docs") -> EngineRequest:
    if chunks is None:
        chunks = seal_chunks(Chunk(f"passage {i}", "doc", i) for i in range(len(vectors)))
    inputs = {"chunks": chunks, "vectors": vectors}
    return EngineRequest(query, "ingest", Op.VECTOR_INGEST, inputs, {"collection": name})


def search(query: str, vectors: Any, handle: Any, k: Any = 3) -> EngineRequest:
    inputs = {"vectors": vectors, "index": handle}
    return EngineRequest(query, "search", Op.VECTOR_SEARCH, inputs, {"top_k": k})


def submitted(engine: FaissEngine, request: EngineRequest) -> Any:
    """The outcome of ``request`` submitted alone, which must be done when submit returns."""
    [future] = engine.submit([request])
    assert future.done() and request.future is future
    return future.exception() or future.result()


def fused_only() -> FaissEngine:
    """An engine whose general inline test fails the test: only the fused step may run."""
    engine = FaissEngine("vector")

    def general_path(batch: Sequence[EngineRequest]) -> bool:
        raise AssertionError("a batch of one took the general inline path")

    engine.runs_inline = general_path  # type: ignore[method-assign]
    return engine


def on_batch_path(engine: FaissEngine, request: EngineRequest) -> Any:
    [outcome] = engine.run_batch([request])
    return outcome


@pytest.mark.parametrize("sealed", [True, False])
async def test_one_ingest_and_one_search_give_what_run_batch_gives(sealed: bool) -> None:
    fused, batch = fused_only(), FaissEngine("vector")
    vectors = seal_unit_rows(rows(0)) if sealed else rows(0) * 2.0  # not unit: normalized
    query = rows(1, 2) if not sealed else seal_unit_rows(rows(1, 1))
    fused_index = submitted(fused, ingest("q1", vectors))
    batch_index = on_batch_path(batch, ingest("q1", vectors))
    assert fused_index == batch_index == {"index": IndexHandle("vector", "q1/docs", NUM_ROWS)}
    hits = submitted(fused, search("q1", query, fused_index["index"]))
    assert hits == on_batch_path(batch, search("q1", query, batch_index["index"]))
    assert len(hits["hits"]) >= 3 and all(h.chunk.text.startswith("passage") for h in hits["hits"])
    again = submitted(fused, ingest("q1", vectors))  # appends, as on the batch path
    assert again["index"].num_items == 2 * NUM_ROWS
    await fused.close()
    await batch.close()


def bad_requests(handle: IndexHandle) -> dict[str, EngineRequest]:
    vectors = seal_unit_rows(rows(0))
    return {
        "engine": search("q1", rows(1, 1), IndexHandle("other", handle.collection)),
        "dim": search("q1", np.ones((1, DIM + 1), np.float32), handle),
        "nan": search("q1", np.full((1, DIM), np.nan, np.float32), handle),
        "top_k": search("q1", rows(1, 1), handle, k=0),
        "top_k_bool": search("q1", rows(1, 1), handle, k=True),
        "name": ingest("q1", vectors, name="no such/name"),
        "no_name": ingest("q1", vectors, name=None),
        "counts": ingest("q1", vectors, chunks=seal_chunks([Chunk("one", "doc", 0)])),
        "chunks": ingest("q1", vectors, chunks=["not a chunk"] * NUM_ROWS),
        "ingest_dim": ingest("q1", np.ones((NUM_ROWS, DIM + 1), np.float32)),
    }


async def test_bad_requests_fail_alone_with_the_batch_paths_messages() -> None:
    fused, batch = fused_only(), FaissEngine("vector")
    vectors = seal_unit_rows(rows(0))
    handle = submitted(fused, ingest("q1", vectors))["index"]
    assert on_batch_path(batch, ingest("q1", vectors)) == {"index": handle}
    fused_bad, batch_bad = bad_requests(handle), bad_requests(handle)
    for what, request in fused_bad.items():
        error = submitted(fused, request)
        expected = on_batch_path(batch, batch_bad[what])
        assert isinstance(error, EngineError) and isinstance(expected, EngineError), what
        assert str(error) == str(expected), what
    assert len(fused._collections["q1/docs"]) == NUM_ROWS  # nothing bad was added
    await fused.close()
    await batch.close()


async def test_an_ended_query_is_refused_and_leaves_nothing() -> None:
    engine = FaissEngine("vector")
    chunks = seal_chunks(Chunk(f"passage {i}", "doc", i) for i in range(NUM_ROWS))
    shared = engine.create_shared("shared", chunks, rows(0))  # outlives the query
    submitted(engine, ingest("q1", seal_unit_rows(rows(0))))
    engine.release("q1")
    for request in (ingest("q1", seal_unit_rows(rows(0))), search("q1", rows(1, 1), shared)):
        error = submitted(engine, request)
        assert isinstance(error, EngineError) and "its query has ended" in str(error)
    assert engine.collection_names() == ["shared"]
    assert submitted(engine, search("q2", rows(1, 1), shared))["hits"]  # another query
    await engine.close()


async def test_work_that_is_not_small_goes_to_the_engine_thread() -> None:
    engine = FaissEngine("vector", hnsw_threshold=NUM_ROWS)
    handle = submitted(engine, ingest("q1", seal_unit_rows(rows(0))))["index"]
    [many_rows] = engine.submit([search("q1", rows(1, 16), handle)])  # matrix product
    assert not many_rows.done()
    assert len((await many_rows)["hits"]) >= 3
    [to_hnsw] = engine.submit([ingest("q1", seal_unit_rows(rows(2, 1)))])  # past the limit
    assert not to_hnsw.done()
    assert (await to_hnsw)["index"].num_items == NUM_ROWS + 1
    [hnsw_search] = engine.submit([search("q1", rows(1, 1), handle)])
    assert not hnsw_search.done()
    assert len((await hnsw_search)["hits"]) == 3
    await engine.close()


async def test_a_budget_that_counts_the_engine_takes_the_general_inline_path() -> None:
    budget = CoreBudget(num_cores=2)  # shared placement, "vector" not light: it counts
    engine = FaissEngine("vector", budget=budget)

    def not_fused(request: EngineRequest) -> None:
        raise AssertionError("the fused step ran under a counting budget")

    engine.run_one_inline = not_fused  # type: ignore[method-assign]
    index = submitted(engine, ingest("q1", seal_unit_rows(rows(0))))
    assert submitted(engine, search("q1", rows(1, 1), index["index"]))["hits"]
    assert budget.busy_engines() == []
    await engine.close()


async def test_a_0_d_array_fails_its_request_with_the_shape_message() -> None:
    engine = FaissEngine("vector")
    handle = submitted(engine, ingest("q1", seal_unit_rows(rows(0))))["index"]
    for request in (ingest("q1", np.ones(()), chunks=[]), search("q1", np.ones(()), handle)):
        [future] = engine.submit([request])  # not inline: the engine thread's checks
        with pytest.raises(EngineError, match=r"2-d array, got shape \(\)"):
            await future
    await engine.close()
