"""MiniLM embedder engine on the real int8 ONNX model: similarity order, fusion, errors."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.embedder import DIM, EmbedderEngine, shared_encoder
from primflow.engines.placement import CoreBudget
from primflow.engines.unit_vectors import is_sealed
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.values import Chunk

pytestmark = pytest.mark.engines

QUESTION = "How do I read a JSON file in Python?"
PARAPHRASE = "Loading JSON data from a file with Python"
UNRELATED = "The weather in Lisbon is sunny and warm today."


def embed(query_id: str, items, node: str = "embed") -> EngineRequest:
    return EngineRequest(query_id, node, Op.EMBED, {"items": items}, {})


async def run(engine: EmbedderEngine, *requests: EngineRequest) -> list:
    return await asyncio.gather(*engine.submit(list(requests)), return_exceptions=True)


def test_similarity_orders_paraphrase_above_unrelated() -> None:
    vectors = shared_encoder().encode([QUESTION, PARAPHRASE, UNRELATED])
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    # all-MiniLM-L6-v2 gives ~0.9 for this paraphrase and ~0.1 for the unrelated text.
    assert similar > 0.7 and unrelated < 0.3


def test_one_and_two_thread_sessions_agree_and_order_is_kept() -> None:
    encoder = shared_encoder()
    texts = [UNRELATED, QUESTION * 3, "short", PARAPHRASE]
    one, two = encoder.encode(texts, num_threads=1), encoder.encode(texts, num_threads=2)
    np.testing.assert_allclose(one, two, atol=1e-4)
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(one, alone, atol=1e-4)


async def test_fused_batch_equals_one_request_per_call() -> None:
    engine = EmbedderEngine()
    requests = [
        embed("q1", [QUESTION], "question"),
        embed("q1", [Chunk(PARAPHRASE, "a.txt", 0), Chunk(UNRELATED, "b.txt", 1)], "chunks"),
        embed("q2", [UNRELATED, QUESTION, "A third, longer sentence about embedding text."], "q2"),
        embed("q3", [], "empty"),
    ]
    fused = await run(engine, *requests)
    for request, out in zip(requests, fused, strict=True):
        [alone] = await run(engine, request)
        assert out["vectors"].shape == (len(request.inputs["items"]), DIM)
        np.testing.assert_allclose(out["vectors"], alone["vectors"], atol=1e-4)
    # The same text in two requests gets the same row.
    np.testing.assert_allclose(fused[0]["vectors"][0], fused[2]["vectors"][1], atol=1e-6)


async def test_bad_items_fail_alone_and_the_engine_keeps_serving() -> None:
    engine = EmbedderEngine()
    results = await run(
        engine,
        embed("q1", "not a list", "as_str"),
        embed("q1", ["ok", 42], "with_int"),
        EngineRequest("q1", "wrong_op", Op.RERANK, {"items": ["x"]}, {}),
        embed("q1", ["fine"], "good"),
    )
    assert "as_str" in str(results[0]) and "got str" in str(results[0])
    assert "items[1] must be str or Chunk, got int" in str(results[1])
    assert "cannot run op rerank" in str(results[2])
    assert all(isinstance(r, EngineError) for r in results[:3])
    assert results[3]["vectors"].shape == (1, DIM)


async def test_engine_asks_the_core_budget_before_each_sub_batch() -> None:
    budget = CoreBudget(num_cores=2)
    asked: list[int] = []
    real_lease = budget.lease

    @contextmanager
    def spy(engine: str) -> Iterator[int]:
        with real_lease(engine) as num_threads:
            asked.append(num_threads)
            yield num_threads

    budget.lease = spy  # type: ignore[method-assign]
    engine = EmbedderEngine(budget=budget)
    budget.begin("llm")  # the LLM is busy: the embedder must take one core
    [out] = await run(engine, embed("q1", [f"sentence number {i}" for i in range(70)]))
    budget.end("llm")
    assert out["vectors"].shape == (70, DIM)
    assert asked == [1, 1, 1]  # 70 texts = 3 sub-batches of <= 32
    assert budget.busy_engines() == []


async def test_outputs_are_sealed_and_the_faiss_engine_keeps_them_without_a_copy() -> None:
    """The embedder checks its rows once and seals them (read-only); the FAISS engine then
    takes them in O(1) and keeps the very matrix. A request whose rows are a gathered
    subset (repeated texts) gets a sealed copy."""
    engine = EmbedderEngine()
    texts = [QUESTION, PARAPHRASE, UNRELATED]
    [whole, repeated] = await run(engine, embed("q1", texts), embed("q2", [UNRELATED, UNRELATED]))
    await engine.close()
    vectors = whole["vectors"]
    assert is_sealed(vectors) and not vectors.flags.writeable
    assert is_sealed(repeated["vectors"]) and repeated["vectors"].shape == (2, DIM)
    np.testing.assert_array_equal(repeated["vectors"][1], vectors[2])
    with pytest.raises(ValueError, match="read-only"):
        vectors[0, 0] = 0.0

    faiss_engine = FaissEngine()
    chunks = [Chunk(t, "doc", i) for i, t in enumerate(texts)]
    inputs = {"chunks": chunks, "vectors": vectors}
    [ingested] = faiss_engine.run_batch(
        [EngineRequest("q1", "ingest", Op.VECTOR_INGEST, inputs, {"collection": "c"})]
    )
    collection = faiss_engine._get(ingested["index"].collection)
    assert collection is not None and collection.rows() is vectors
    await faiss_engine.close()
