"""The in-process vector index engine (default): FAISS collections in this process.

Owns per-query and shared collections. Invariants:

- VECTOR_INGEST creates (or appends to, for pipelined stages) the per-query collection
  ``<query_id>/<collection>`` and returns ``{"index": IndexHandle(engine, that name)}``.
  It is freed when the query is released or aborted; ingest for a closed query fails.
- Shared collections are made ahead of time with :meth:`create_shared` and survive
  queries; search them with ``IndexHandle(engine, name)``.
- VECTOR_SEARCH with query vectors ``[n × d]`` returns ``{"hits"}``: per chunk its best
  score over the query vectors, best first, at most ``top_k``. The searches of one batch
  against the same collection run as one FAISS call.
- Bad input (wrong dimension, unknown collection) fails that request only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np

from primflow.engines.base import EngineError, EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.engines.vector.common import (
    Matrix,
    check_collection_name,
    ingest_inputs,
    merge_hits,
    query_scoped,
    search_handle,
    top_k,
    unit_rows,
)
from primflow.engines.vector.faiss_collection import HNSW_THRESHOLD, FaissCollection
from primflow.graph.ir import Op
from primflow.graph.ops import HITS, INDEX, VECTORS
from primflow.values import Chunk, IndexHandle


class FaissEngine(ThreadedEngine):
    kind = EngineKind.VECTOR_INDEX

    def __init__(
        self,
        name: str = "vector",
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
        hnsw_threshold: int = HNSW_THRESHOLD,
    ) -> None:
        super().__init__(name, profile, budget)
        self.hnsw_threshold = hnsw_threshold
        self._collections: dict[str, FaissCollection] = {}
        self._collections_lock = threading.Lock()

    def create_shared(self, name: str, chunks: Sequence[Chunk], vectors: Any) -> IndexHandle:
        """Create (or extend) a shared collection that outlives queries."""
        check_collection_name(name, self.name, "create_shared")
        matrix = unit_rows(vectors, self.name, "create_shared")
        if len(matrix) != len(chunks):
            raise EngineError(
                self.name, "create_shared", f"{len(chunks)} chunks, {len(matrix)} vectors"
            )
        collection = self._get_or_create(name, matrix.shape[1], "create_shared")
        collection.add(chunks, matrix)
        return IndexHandle(self.name, name, len(collection))

    def collection_names(self) -> list[str]:
        with self._collections_lock:
            return sorted(self._collections)

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        if self.budget is not None:
            # FAISS parallelizes batched searches with OpenMP; the setting is per thread.
            faiss.omp_set_num_threads(self.threads())
        outcomes: list[Outcome] = [{} for _ in batch]
        searches: dict[str, list[tuple[int, Matrix, int]]] = {}
        for i, request in enumerate(batch):
            try:
                if request.op is Op.VECTOR_INGEST:
                    outcomes[i] = self._ingest(request)
                elif request.op is Op.VECTOR_SEARCH:
                    handle = search_handle(request, self.name)
                    collection = self._find(handle.collection, request.node)
                    queries = unit_rows(
                        request.inputs.get(VECTORS), self.name, request.node, collection.dim
                    )
                    searches.setdefault(handle.collection, []).append(
                        (i, queries, top_k(request, self.name))
                    )
                else:
                    raise EngineError(self.name, request.node, f"cannot run op {request.op}")
            except EngineError as err:
                outcomes[i] = err
        for name, jobs in searches.items():
            self._search_fused(name, jobs, outcomes)
        return outcomes

    def _ingest(self, request: EngineRequest) -> dict[str, Any]:
        name = check_collection_name(request.params.get("collection"), self.name, request.node)
        if self.is_closed(request.query_id):
            raise EngineError(self.name, request.node, f"query {request.query_id!r} has ended")
        chunks, vectors = ingest_inputs(request, self.name)
        scoped = query_scoped(request.query_id, name)
        dim = vectors.shape[1] or None
        collection = self._get_or_create(scoped, dim, request.node)
        if dim is not None and dim != collection.dim:
            raise EngineError(
                self.name,
                request.node,
                f"vectors have dimension {dim}, {scoped!r} has {collection.dim}",
            )
        collection.add(chunks, vectors)
        if self.is_closed(request.query_id):  # aborted meanwhile: do not leak the collection
            self.free_query(request.query_id)
            raise EngineError(self.name, request.node, f"query {request.query_id!r} has ended")
        return {INDEX: IndexHandle(self.name, scoped, len(collection))}

    def _search_fused(
        self, name: str, jobs: list[tuple[int, Matrix, int]], outcomes: list[Outcome]
    ) -> None:
        with self._collections_lock:
            collection = self._collections.get(name)
        if collection is None:  # freed by abort while the batch was queued
            for i, _, _ in jobs:
                outcomes[i] = EngineError(self.name, "search", f"collection {name!r} was freed")
            return
        stacked = np.concatenate([queries for _, queries, _ in jobs])
        per_row = collection.search(stacked, max(k for _, _, k in jobs))
        start = 0
        for i, queries, k in jobs:
            outcomes[i] = {HITS: merge_hits(per_row[start : start + len(queries)], k)}
            start += len(queries)

    def _get_or_create(self, name: str, dim: int | None, node: str) -> FaissCollection:
        with self._collections_lock:
            collection = self._collections.get(name)
            if collection is None:
                if dim is None:
                    raise EngineError(self.name, node, f"cannot create {name!r} from zero vectors")
                collection = self._collections[name] = FaissCollection(dim, self.hnsw_threshold)
            return collection

    def _find(self, name: str, node: str) -> FaissCollection:
        with self._collections_lock:
            collection = self._collections.get(name)
        if collection is None:
            raise EngineError(self.name, node, f"no collection {name!r}")
        return collection

    def free_query(self, query_id: str) -> None:
        prefix = f"{query_id}/"
        with self._collections_lock:
            for name in [n for n in self._collections if n.startswith(prefix)]:
                del self._collections[name]
