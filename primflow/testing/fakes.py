"""Fake engines, one per ``EngineKind``, for scheduling tests and the simulator.

They implement the engine contract (``engines/base.py``) with plausible values of the
right types and no models: the embedder returns deterministic hash-based unit vectors,
the index does cosine search over what a query ingested, the reranker scores word
overlap, web search makes up sources, the LLM writes deterministic text (a JSON list
when a parser asks for items). This module holds the retrieval-side fakes and the
registry; the shared machinery (latency, test knobs, records, per-query cleanup) is
``fake_engine.FakeEngine`` and the LLM is ``fake_llm.FakeLLM``, both re-exported here
so ``from primflow.testing.fakes import ...`` reaches every fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from primflow.engines.base import EngineKind, EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Op
from primflow.testing.fake_engine import MAX_NUM_CLOSED_QUERIES, FakeEngine, digest
from primflow.testing.fake_llm import FakeLLM, FakeLLMState
from primflow.values import Chunk, Hit, IndexHandle

__all__ = [
    "EMBED_DIM",
    "FAKES_BY_KIND",
    "MAX_NUM_CLOSED_QUERIES",
    "FakeEmbedder",
    "FakeEngine",
    "FakeLLM",
    "FakeLLMState",
    "FakeReranker",
    "FakeVectorIndex",
    "FakeWebSearch",
    "fake_embedding",
    "make_fake_engines",
]

EMBED_DIM = 32


@lru_cache(maxsize=65_536)
def fake_embedding(text: str, dim: int = EMBED_DIM) -> np.ndarray:
    """A deterministic unit vector for ``text``; equal texts embed equally."""
    vector = np.random.default_rng(digest(text)).standard_normal(dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    vector.setflags(write=False)
    return vector


def _as_text(item: Any) -> str:
    if isinstance(item, Chunk):
        return item.text
    if isinstance(item, Hit):
        return item.chunk.text
    return str(item)


def _as_items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Chunk | Hit):
        return [value]
    return list(value)


class FakeEmbedder(FakeEngine):
    kind = EngineKind.EMBEDDER

    def compute(self, request: EngineRequest) -> Outputs:
        texts = [_as_text(item) for item in _as_items(request.inputs.get(ops.ITEMS))]
        if not texts:
            return {ops.VECTORS: np.zeros((0, EMBED_DIM), dtype=np.float32)}
        return {ops.VECTORS: np.stack([fake_embedding(t) for t in texts])}


@dataclass(slots=True)
class _Collection:
    chunks: list[Chunk] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)


class FakeVectorIndex(FakeEngine):
    """Per-query collections named ``<query id>/<collection>``; ingests append. A search
    returns the ``top_k`` best chunks of each query vector, one hit per chunk (its best
    score), best first."""

    kind = EngineKind.VECTOR_INDEX

    def __init__(self, name: str, profile: LatencyProfile | None = None, **kwargs: Any) -> None:
        super().__init__(name, profile, **kwargs)
        self.collections: dict[str, _Collection] = {}
        self._collections_by_query: dict[str, set[str]] = {}

    def compute(self, request: EngineRequest) -> Outputs:
        if request.op is Op.VECTOR_INGEST:
            return {ops.INDEX: self._ingest(request)}
        return {ops.HITS: self._search(request)}

    def _ingest(self, request: EngineRequest) -> IndexHandle:
        chunks = list(request.inputs[ops.CHUNKS])
        vectors = np.asarray(request.inputs[ops.VECTORS], dtype=np.float32)
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        name = f"{request.query_id}/{request.params.get('collection', 'default')}"
        collection = self.collections.setdefault(name, _Collection())
        self._collections_by_query.setdefault(request.query_id, set()).add(name)
        collection.chunks.extend(chunks)
        collection.vectors.extend(vectors)
        return IndexHandle(self.name, name, len(collection.chunks))

    def _search(self, request: EngineRequest) -> list[Hit]:
        handle = request.inputs.get(ops.INDEX)
        if not isinstance(handle, IndexHandle) or handle.collection not in self.collections:
            raise ValueError(f"no collection for index {handle!r}")
        collection = self.collections[handle.collection]
        queries = np.atleast_2d(np.asarray(request.inputs[ops.VECTORS], dtype=np.float32))
        top_k = int(request.params.get("top_k", 3))
        if not collection.chunks or len(queries) == 0:
            return []
        scores = queries @ np.stack(collection.vectors).T
        best: dict[int, Hit] = {}
        for row in scores:
            for i in map(int, np.argsort(-row)[:top_k]):
                hit = Hit(collection.chunks[i], float(row[i]))
                if i not in best or hit.score > best[i].score:
                    best[i] = hit
        # top_k per query vector, like the real indexes (vector/common.py merge_hits):
        # n one-vector searches (decode pipelining) find what one n-vector search does.
        return sorted(best.values(), key=lambda h: h.score, reverse=True)

    def share_query_collections(self, other: FakeVectorIndex) -> None:
        """Use ``other``'s store (with ``collections = other.collections``): instances
        of one shared index, as several servers of one database."""
        self._collections_by_query = other._collections_by_query

    def free_query(self, query_id: str) -> None:
        for name in self._collections_by_query.pop(query_id, set()):
            self.collections.pop(name, None)


class FakeReranker(FakeEngine):
    kind = EngineKind.RERANKER

    def compute(self, request: EngineRequest) -> Outputs:
        query_words = set(str(request.inputs.get(ops.QUERY, "")).lower().split())
        hits = list(request.inputs.get(ops.HITS) or [])
        top_k = int(request.params.get("top_k", len(hits)))

        def score(hit: Hit) -> float:
            words = set(hit.chunk.text.lower().split())
            overlap = len(query_words & words) / (1 + len(query_words))
            return overlap + (digest(hit.chunk.text) % 1000) / 1e6

        rescored = [Hit(hit.chunk, score(hit)) for hit in hits]
        return {ops.HITS: sorted(rescored, key=lambda h: h.score, reverse=True)[:top_k]}


class FakeWebSearch(FakeEngine):
    kind = EngineKind.WEB_SEARCH

    def compute(self, request: EngineRequest) -> Outputs:
        top_k = int(request.params.get("top_k", 3))
        hits: list[Hit] = []
        for query in _as_items(request.inputs.get(ops.QUERIES)):
            key = digest(str(query))
            for rank in range(top_k):
                chunk = Chunk(
                    f"{query}: result {rank + 1}", f"https://search.example/{key}/{rank}", rank
                )
                hits.append(Hit(chunk, 1.0 / (rank + 1)))
        return {ops.HITS: sorted(hits, key=lambda h: h.score, reverse=True)[:top_k]}


FAKES_BY_KIND: dict[EngineKind, type[FakeEngine]] = {
    EngineKind.LLM: FakeLLM,
    EngineKind.EMBEDDER: FakeEmbedder,
    EngineKind.VECTOR_INDEX: FakeVectorIndex,
    EngineKind.RERANKER: FakeReranker,
    EngineKind.WEB_SEARCH: FakeWebSearch,
}


def make_fake_engines(
    names: dict[str, EngineKind], *, latency_scale: float = 1.0
) -> dict[str, FakeEngine]:
    """One fake per named engine, e.g. ``{"llm": EngineKind.LLM, ...}``."""
    return {
        name: FAKES_BY_KIND[kind](name, latency_scale=latency_scale) for name, kind in names.items()
    }
