"""The FAISS engine's fused inline step for several searches of one collection
(``run_many_inline``): a batch of concurrent searches gives each request what
``run_batch`` gives, a bad request fails alone with the same message, an ended query's
request is refused alone, and anything else takes the general paths."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from primflow.apps.samples import sample_documents
from primflow.collections import CollectionStore, embedding_model_id
from primflow.engines.base import EngineError, EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.unit_vectors import seal_unit_rows
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.session import EngineStack, Session, fake_factory
from primflow.values import Chunk, IndexHandle, seal_chunks

DIM = 24


def rows(seed: int, num_rows: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((num_rows, DIM)).astype(np.float32)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def search(query: str, vectors: Any, handle: Any, k: Any = 3) -> EngineRequest:
    inputs = {"vectors": vectors, "index": handle}
    return EngineRequest(query, "search", Op.VECTOR_SEARCH, inputs, {"top_k": k})


def ingest(query: str, vectors: np.ndarray) -> EngineRequest:
    chunks = seal_chunks(Chunk(f"p{i}", "doc", i) for i in range(len(vectors)))
    inputs = {"chunks": chunks, "vectors": seal_unit_rows(vectors)}
    return EngineRequest(query, "ingest", Op.VECTOR_INGEST, inputs, {"collection": "docs"})


def with_shared(num_rows: int, fused_only: bool) -> tuple[FaissEngine, IndexHandle]:
    """An engine with a shared collection; with ``fused_only`` its general inline test
    fails the test, so only the fused step (or the engine thread) may run a batch."""
    engine = FaissEngine("vector")
    chunks = seal_chunks(Chunk(f"passage {i}", "doc", i) for i in range(num_rows))
    handle = engine.create_shared("shared", chunks, seal_unit_rows(rows(0, num_rows)))
    if fused_only:

        def general_path(batch: Sequence[EngineRequest]) -> bool:
            raise AssertionError("the batch took the general inline path")

        engine.runs_inline = general_path  # type: ignore[method-assign]
    return engine, handle


def submitted(engine: FaissEngine, batch: list[EngineRequest]) -> list[Any]:
    """The outcomes of ``batch``, which must all be done when submit returns."""
    futures = engine.submit(batch)
    assert all(f.done() for f in futures)
    assert [r.future for r in batch] == futures
    return [f.exception() or f.result() for f in futures]


def queries(num: int, handle: IndexHandle, seed: int = 1) -> list[EngineRequest]:
    found = rows(seed, num)
    return [search(f"q{i}", found[i : i + 1], handle, 1 + i % 4) for i in range(num)]


@pytest.mark.parametrize("num_rows", [40, 650])  # faiss's kernel, one matrix product
@pytest.mark.parametrize("num_queries", [2, 8, 15])
async def test_each_search_gets_what_run_batch_and_index_flat_ip_give(
    num_rows: int, num_queries: int
) -> None:
    fused, handle = with_shared(num_rows, fused_only=True)
    general, general_handle = with_shared(num_rows, fused_only=False)
    found = submitted(fused, queries(num_queries, handle))
    assert found == general.run_batch(queries(num_queries, general_handle))
    index = faiss.IndexFlatIP(DIM)
    index.add(rows(0, num_rows))
    for i, outputs in enumerate(found):
        _, want = index.search(rows(1, num_queries)[i : i + 1], 1 + i % 4)
        assert [h.chunk.chunk_id for h in outputs["hits"]] == want[0].tolist()
    await fused.close()
    await general.close()


def bad_searches(handle: IndexHandle) -> list[EngineRequest]:
    return [
        search("bad_engine", rows(2, 1), IndexHandle("other", handle.collection)),
        search("bad_dim", np.ones((1, DIM + 1), np.float32), handle),
        search("bad_nan", np.full((1, DIM), np.nan, np.float32), handle),
        search("bad_k", rows(2, 1), handle, k=0),
        search("bad_bool_k", rows(2, 1), handle, k=True),
    ]


@pytest.mark.parametrize("num_rows", [40, 650])
async def test_bad_searches_fail_alone_with_run_batchs_messages(num_rows: int) -> None:
    fused, handle = with_shared(num_rows, fused_only=True)
    general, general_handle = with_shared(num_rows, fused_only=False)
    good, general_good = queries(8, handle), queries(8, general_handle)
    batch = good[:3] + bad_searches(handle) + good[3:]
    general_batch = general_good[:3] + bad_searches(general_handle) + general_good[3:]
    found, expected = submitted(fused, batch), general.run_batch(general_batch)
    for got, want in zip(found, expected, strict=True):
        if isinstance(want, EngineError):
            assert isinstance(got, EngineError) and str(got) == str(want)
        else:
            assert got == want and got["hits"]
    assert sum(isinstance(o, EngineError) for o in found) == 5
    await fused.close()
    await general.close()


async def test_an_ended_querys_search_is_refused_alone() -> None:
    engine, handle = with_shared(650, fused_only=True)
    engine.release("q2")
    found = submitted(engine, queries(8, handle))
    assert isinstance(found[2], EngineError) and "its query has ended" in str(found[2])
    assert all(isinstance(o, dict) and o["hits"] for i, o in enumerate(found) if i != 2)
    await engine.close()


async def test_other_batches_take_the_general_paths() -> None:
    engine, handle = with_shared(40, fused_only=False)
    engine.submit([ingest("q0", rows(3, 40))])
    own = IndexHandle("vector", "q0/docs", 40)
    mixed = {
        "two collections": [search("a", rows(1, 1), handle), search("b", rows(1, 1), own)],
        "an ingest": [search("a", rows(1, 1), handle), ingest("q1", rows(3, 5))],
        "not a handle": [search("a", rows(1, 1), handle), search("b", rows(1, 1), "shared")],
        "no collection": [
            search("a", rows(1, 1), handle),
            search("b", rows(1, 1), IndexHandle("vector", "nothing")),
        ],
        "16 query rows": [search("a", rows(1, 8), handle), search("b", rows(2, 8), handle)],
    }
    for what, batch in mixed.items():
        assert engine.run_many_inline(batch) is None, what
    futures = engine.submit(mixed["no collection"])  # the engine thread's checks say why
    with pytest.raises(EngineError, match="no collection 'nothing'"):
        await futures[1]
    assert (await futures[0])["hits"]
    await engine.close()


async def test_a_budget_that_counts_the_engine_never_reaches_the_fused_step() -> None:
    budget = CoreBudget(num_cores=2)  # shared placement, "vector" not light: it counts
    engine = FaissEngine("vector", budget=budget)
    chunks = seal_chunks(Chunk(f"passage {i}", "doc", i) for i in range(40))
    handle = engine.create_shared("shared", chunks, seal_unit_rows(rows(0, 40)))

    def not_fused(batch: Sequence[EngineRequest]) -> None:
        raise AssertionError("the fused step ran under a counting budget")

    engine.run_many_inline = not_fused  # type: ignore[method-assign]
    found = submitted(engine, queries(4, handle))
    assert all(o["hits"] for o in found)
    assert budget.busy_engines() == []
    await engine.close()


async def test_concurrent_queries_reach_the_engine_as_one_fused_batch(tmp_path: Path) -> None:
    """Eight questions asked at once of one collection (fake LLM and embedder, real
    FAISS): the embedder answers them in one batch, so their eight searches are ready
    in one loop iteration and the runtime submits them as one batch, which takes the
    fused step."""
    batches: list[int] = []
    fused: list[int] = []
    fakes = fake_factory(latency_scale=0.001)

    def build(name, kind, budget, profile):  # type: ignore[no-untyped-def]
        if kind is not EngineKind.VECTOR_INDEX:
            return fakes(name, kind, budget, profile)
        engine = FaissEngine(name, profile=profile)
        submit, run_many_inline = engine.submit, engine.run_many_inline

        def recording_submit(batch: Sequence[EngineRequest]) -> Any:
            batches.append(sum(r.op is Op.VECTOR_SEARCH for r in batch))
            return submit(batch)

        def recording_fused(batch: Sequence[EngineRequest]) -> Any:
            outcomes = run_many_inline(batch)
            fused.append(0 if outcomes is None else len(outcomes))
            return outcomes

        engine.submit = recording_submit  # type: ignore[method-assign]
        engine.run_many_inline = recording_fused  # type: ignore[method-assign]
        return engine

    stack = EngineStack.for_apps(["naive_rag"], build)
    async with stack, Session(stack) as session:
        store = CollectionStore(tmp_path)
        collection = store.create(
            "samples", embedding_model=embedding_model_id(stack.engines["embedder"])
        )
        await collection.add(sample_documents(), stack.engines["embedder"])
        reopened = store.open("samples")
        questions = [f"How many days of leave, case {i}?" for i in range(8)]
        answers = await asyncio.gather(
            *(session.ask("naive_rag", q, collection=reopened) for q in questions)
        )
    assert all(answer.passages for answer in answers)
    assert 8 in batches and 8 in fused  # one batch of the eight searches, run fused
