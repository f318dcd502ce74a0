"""Rerankers on the real MiniLM embedder: the relevant passage comes first."""

import asyncio

import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.rerank import RerankEngine
from primflow.engines.rerank.rerankers import bm25_scores, rrf
from primflow.graph.ir import Op
from primflow.values import Chunk, Hit

pytestmark = pytest.mark.engines

QUESTION = "What is the boiling point of water at sea level?"
PASSAGES = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Python lists are mutable sequences that can hold items of any type.",
    "At sea level, pure water boils at 100 degrees Celsius (212 degrees Fahrenheit).",
    "The Pacific is the largest and deepest of Earth's oceans.",
]
RELEVANT = 3


def candidate_hits() -> list[Hit]:
    # The retriever ranked the relevant passage last.
    return [Hit(Chunk(t, f"doc{i}", i), 1.0 - 0.1 * i) for i, t in enumerate(PASSAGES)]


def rerank(query: str, hits, top_k: int = 3, node: str = "rerank") -> EngineRequest:
    return EngineRequest("q1", node, Op.RERANK, {"query": query, "hits": hits}, {"top_k": top_k})


async def run(engine: RerankEngine, *requests: EngineRequest) -> list:
    return await asyncio.gather(*engine.submit(list(requests)), return_exceptions=True)


@pytest.mark.parametrize("method", ["cosine", "hybrid"])
async def test_relevant_passage_comes_first(method: str) -> None:
    engine = RerankEngine(method=method)
    [out] = await run(engine, rerank(QUESTION, candidate_hits()))
    hits = out["hits"]
    assert hits[0].chunk.chunk_id == RELEVANT
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_fused_batch_equals_separate_calls() -> None:
    engine = RerankEngine()
    other = "Which structure was built for the 1889 World's Fair?"
    fused = await run(
        engine, rerank(QUESTION, candidate_hits()), rerank(other, candidate_hits(), 2)
    )
    assert fused[1]["hits"][0].chunk.chunk_id == 0
    for request, out in zip(
        [rerank(QUESTION, candidate_hits()), rerank(other, candidate_hits(), 2)], fused, strict=True
    ):
        [alone] = await run(engine, request)
        assert [h.chunk for h in out["hits"]] == [h.chunk for h in alone["hits"]]
        assert [h.score for h in out["hits"]] == pytest.approx(
            [h.score for h in alone["hits"]], abs=1e-4
        )


async def test_bad_requests_fail_alone() -> None:
    engine = RerankEngine()
    results = await run(
        engine,
        rerank(None, candidate_hits(), node="no_query"),  # type: ignore[arg-type]
        rerank(QUESTION, ["not a hit"], node="bad_hits"),
        rerank(QUESTION, candidate_hits(), top_k=0, node="bad_k"),
        rerank(QUESTION, [], node="empty"),
        rerank(QUESTION, candidate_hits(), top_k=1, node="good"),
    )
    assert all(isinstance(r, EngineError) for r in results[:3])
    assert "no_query" in str(results[0]) and "query must be text" in str(results[0])
    assert "hits must be a list of Hit" in str(results[1])
    assert "top_k must be a positive int, got 0" in str(results[2])
    assert results[3] == {"hits": []}
    assert results[4]["hits"][0].chunk.chunk_id == RELEVANT


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="'cross'"):
        RerankEngine(method="cross")


def test_bm25_prefers_the_passage_with_rare_query_terms() -> None:
    scores = bm25_scores("zebra stripes", ["the zebra has stripes", "the horse", "the zebra"])
    assert scores[0] > scores[2] > scores[1] == 0.0


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = rrf([[0.9, 0.1, 0.5], [0.0, 3.0, 2.0]])
    assert fused == pytest.approx([1 / 61 + 1 / 63, 1 / 63 + 1 / 61, 1 / 62 + 1 / 62])
