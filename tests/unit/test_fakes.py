"""The fake engines' values: what tests and the simulator rely on."""

from __future__ import annotations

import numpy as np
import pytest

from primflow.engines.base import EngineRequest
from primflow.graph import ops
from primflow.graph.ir import Op
from primflow.testing.fakes import FakeVectorIndex, fake_embedding
from primflow.values import Chunk, Hit

TEXTS = [f"passage {i} about topic {i % 3}" for i in range(12)]


def _search(index: FakeVectorIndex, handle: object, queries: list[str], top_k: int) -> list[Hit]:
    request = EngineRequest(
        query_id="q",
        node="search",
        op=Op.VECTOR_SEARCH,
        inputs={ops.INDEX: handle, ops.VECTORS: np.stack([fake_embedding(t) for t in queries])},
        params={"top_k": top_k},
    )
    return index.compute(request)[ops.HITS]  # type: ignore[no-any-return]


def test_vector_search_keeps_top_k_per_query_vector_so_split_searches_agree() -> None:
    index = FakeVectorIndex("vectors")
    chunks = [Chunk(text, "doc", i) for i, text in enumerate(TEXTS)]
    ingest = EngineRequest(
        query_id="q",
        node="ingest",
        op=Op.VECTOR_INGEST,
        inputs={ops.CHUNKS: chunks, ops.VECTORS: np.stack([fake_embedding(t) for t in TEXTS])},
        params={},
    )
    handle = index.compute(ingest)[ops.INDEX]
    queries = [TEXTS[0], TEXTS[5], TEXTS[10]]
    together = _search(index, handle, queries, top_k=2)
    apart = [hit for query in queries for hit in _search(index, handle, [query], top_k=2)]
    best_apart: dict[int, float] = {}
    for hit in apart:
        best_apart[hit.chunk.chunk_id] = max(hit.score, best_apart.get(hit.chunk.chunk_id, -1))
    # float32 matmul rounds a batch and single rows differently in the last bits
    assert {h.chunk.chunk_id: h.score for h in together} == pytest.approx(best_apart, abs=1e-6)
    assert len(together) > 2  # more than top_k overall: each query vector brings its own
    assert {0, 5, 10} <= {h.chunk.chunk_id for h in together}  # each finds itself first
    assert [h.score for h in together] == sorted((h.score for h in together), reverse=True)
