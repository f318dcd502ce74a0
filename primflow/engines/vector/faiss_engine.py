"""The in-process vector index engine (default): FAISS collections in this process.

Owns per-query and shared collections; request checks and op dispatch are
:class:`VectorEngine`'s (base_engine.py). Invariants:

- VECTOR_INGEST creates (or appends to, for pipelined stages) the per-query collection
  ``<query_id>/<collection>`` and returns ``{"index": IndexHandle(engine, that name)}``.
  It is freed when the query is released or aborted; ingest for a closed query fails.
- Shared collections are made ahead of time with :meth:`create_shared` (or handed over
  whole, e.g. loaded from disk, with :meth:`put_shared`) and survive queries; search
  them with ``IndexHandle(engine, name)``. ``put_shared`` swaps the entry in one step,
  so a search already running keeps the collection object it started with.
- VECTOR_SEARCH with query vectors ``[n × d]`` returns ``{"hits"}``: the ``top_k`` best
  of each query vector, one per chunk (its best score), best first. The searches of one
  batch against the same collection run as one FAISS call, or from 16 query rows on an
  exact collection as one matrix product with numpy's BLAS at one thread
  (faiss_collection.py, matmul_search.py: ``IndexFlatIP``'s ranking, ties aside).
- Bad input (wrong dimension, unknown collection) fails that request only.
- Small work runs inline (``runs_inline``, threaded.py): batches whose ingests add up to
  ``MAX_INLINE_INGEST_ROWS`` rows each into exact collections and whose searches have
  fewer than ``MAX_INLINE_QUERY_ROWS`` query rows in all, over at most
  ``MAX_INLINE_SEARCH_ROWS`` query-row x collection-row products in all. That work takes
  10-300 microseconds on the calling thread (faiss's SIMD scan), while the hop
  to the engine thread and back took 0.1-0.2 ms per request (CHANGELOG.md).
  Larger work and HNSW collections run on the engine thread. A batch of one ingest or
  search takes ``run_one_inline``: the same limits and checks in one step, without the
  batch path's layers; a batch of several searches of one exact collection takes
  ``run_many_inline``: the collection found once, one kernel call, hits split per request.
- Exact collections keep the sealed rows they are given and search them with faiss's
  own kernel under 16 query rows, with ``IndexFlatIP``'s results (faiss_collection.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import faiss
import numpy as np

from primflow.engines.base import EngineError, EngineRequest, Outputs
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.threaded import Outcome
from primflow.engines.unit_vectors import is_sealed
from primflow.engines.vector.base_engine import SearchJob, VectorEngine
from primflow.engines.vector.common import (
    DEFAULT_TOP_K,
    Matrix,
    check_collection_name,
    check_dim,
    hits_outputs,
    index_outputs,
    ingest_inputs,
    names_of_query,
    query_scoped,
    search_handle,
    top_k,
    unit_rows,
)
from primflow.engines.vector.faiss_collection import HNSW_THRESHOLD, FaissCollection
from primflow.engines.vector.faiss_limits import (
    MAX_INLINE_INGEST_ROWS,
    MAX_INLINE_QUERY_ROWS,
    is_small_search,
    num_ingest_rows,
    num_query_rows,
)
from primflow.engines.vector.faiss_limits import (
    MAX_INLINE_SEARCH_ROWS as MAX_INLINE_SEARCH_ROWS,  # re-exported
)
from primflow.graph.ir import Op
from primflow.graph.ops import INDEX, VECTORS
from primflow.values import Chunk, IndexHandle


class FaissEngine(VectorEngine):
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

    def collection_names(self) -> list[str]:
        with self._collections_lock:
            return sorted(self._collections)

    def collection_dim(self, name: str) -> int | None:
        collection = self._get(name)
        return None if collection is None else collection.dim

    def runs_inline(self, batch: Sequence[EngineRequest]) -> bool:
        """Small enough to run inline, counted over the whole batch (its searches of one
        collection run as one faiss call); anything unexpected goes to the engine
        thread, whose checks give the error."""
        num_query_rows = num_products = 0
        for request in batch:
            if request.op is Op.VECTOR_INGEST:
                if not self._is_small_ingest(request):
                    return False
                continue
            size = self._search_size(request)
            if size is None:
                return False
            num_query_rows += size[0]
            num_products += size[0] * size[1]
        return is_small_search(num_query_rows, num_products)

    def _is_small_ingest(self, request: EngineRequest) -> bool:
        num_rows = num_ingest_rows(request.inputs.get(VECTORS))
        if num_rows is None or num_rows > MAX_INLINE_INGEST_ROWS:
            return False
        name = request.params.get("collection")
        collection = self._get(query_scoped(request.query_id, name)) if name else None
        num_held = 0 if collection is None else len(collection)
        return num_held + num_rows <= self.hnsw_threshold and not (
            collection is not None and collection.is_hnsw
        )

    def _search_size(self, request: EngineRequest) -> tuple[int, int] | None:
        """(query rows, collection rows) of an exact search, else None (not inline)."""
        target = self._exact_search(request) if request.op is Op.VECTOR_SEARCH else None
        return None if target is None else (target[0], len(target[1]))

    def _exact_search(self, request: EngineRequest) -> tuple[int, FaissCollection] | None:
        """A search's query rows and its exact collection, else None (not inline)."""
        handle = request.inputs.get(INDEX)
        num_rows = num_query_rows(request.inputs.get(VECTORS))
        if not isinstance(handle, IndexHandle) or num_rows is None:
            return None
        collection = self._get(handle.collection)
        if collection is None or collection.is_hnsw:
            return None
        return num_rows, collection

    def _set_omp_threads(self, num_query_rows: int) -> None:
        """FAISS's OpenMP threads for the next call (a per-thread setting): one under
        ``MAX_INLINE_QUERY_ROWS`` rows, where faiss would only split the rows over
        a team whose start cost more than the search on a busy machine (8 rows on 2,000
        vectors: 0.8 ms with one thread, 1-5 ms with two), else the core budget's."""
        if num_query_rows < MAX_INLINE_QUERY_ROWS:
            faiss.omp_set_num_threads(1)
        elif self.budget is not None:
            faiss.omp_set_num_threads(self.threads())
        else:
            faiss.omp_set_num_threads(os.cpu_count() or 1)

    def _add_shared(self, name: str, chunks: Sequence[Chunk], vectors: Matrix) -> int:
        collection = self._get_or_create(name, vectors.shape[1], "create_shared")
        collection.add(chunks, vectors)
        return len(collection)

    def put_shared(self, name: str, collection: FaissCollection) -> IndexHandle:
        """Serve ``collection`` as the shared collection ``name`` (replacing any other);
        the caller must not add to it afterwards (give the engine a copy to change)."""
        check_collection_name(name, self.name, "put_shared")
        with self._collections_lock:
            self._collections[name] = collection
        return IndexHandle(self.name, name, len(collection))

    def drop_shared(self, name: str) -> None:
        check_collection_name(name, self.name, "drop_shared")
        with self._collections_lock:
            self._collections.pop(name, None)

    def _ingest(self, request: EngineRequest) -> Outputs:
        job = self._ingest_job(request)
        outputs = self._add_rows(request, job.collection, job.chunks, job.vectors)
        if self.is_closed(request.query_id):  # aborted meanwhile: do not leak the collection
            self.free_query(request.query_id)
            raise self._query_ended(request)
        return outputs

    def _add_rows(
        self, request: EngineRequest, name: str, chunks: Sequence[Chunk], vectors: Matrix
    ) -> Outputs:
        """Add checked rows to the per-query collection ``name`` (made if new)."""
        dim = vectors.shape[1] or None
        collection = self._get_or_create(name, dim, request.node)
        if dim is not None:
            check_dim(vectors, collection.dim, name, self.name, request.node)
        self._set_omp_threads(len(vectors))  # an HNSW add is parallel; flat adds no work
        collection.add(chunks, vectors)
        return index_outputs(self.name, name, len(collection))

    # --- one request inline (ThreadedEngine.run_one_inline): runs_inline + run_batch ---

    def run_one_inline(self, request: EngineRequest) -> Outcome | None:
        """A single ingest or search, checked and run in one step when ``runs_inline``
        would take it (same limits, same checks and messages, in the same order)."""
        try:
            if request.op is Op.VECTOR_SEARCH:
                return self._search_inline(request)
            if request.op is Op.VECTOR_INGEST:
                return self._ingest_inline(request)
        except Exception as err:  # an EngineError, or a bug: it fails its request alone
            return err
        return None

    def _search_inline(self, request: EngineRequest) -> Outcome | None:
        # _exact_search, search_handle, unit_rows and top_k written out for the common
        # case (each runs in every retrieval step); the rare cases call them for the
        # very checks and messages.
        inputs = request.inputs
        handle, queries = inputs.get(INDEX), inputs.get(VECTORS)
        if not isinstance(handle, IndexHandle) or not isinstance(queries, np.ndarray):
            return None
        if queries.ndim == 0:
            return None
        num_rows = 1 if queries.ndim == 1 else len(queries)
        collection = self._collections.get(handle.collection)
        if collection is None or collection.is_hnsw:
            return None
        if not is_small_search(num_rows, num_rows * len(collection)):
            return None
        if request.query_id in self._closed_queries:
            return self.refused(request)
        if handle.engine != self.name:
            search_handle(request, self.name)  # raises the engine mismatch
        dim = collection.dim
        matrix = (
            queries
            if is_sealed(queries) and queries.shape[1] == dim
            else unit_rows(queries, self.name, request.node, dim)
        )
        k = request.params.get("top_k", DEFAULT_TOP_K)
        if type(k) is not int or k < 1:
            k = top_k(request, self.name)  # raises what is not a positive int
        faiss.omp_set_num_threads(1)  # under MAX_INLINE_QUERY_ROWS (_set_omp_threads)
        return hits_outputs(collection.search(matrix, k), k)

    def _ingest_inline(self, request: EngineRequest) -> Outcome | None:
        # _is_small_ingest and _add_rows written out: the collection looked up once.
        num_rows = num_ingest_rows(request.inputs.get(VECTORS))
        if num_rows is None or num_rows > MAX_INLINE_INGEST_ROWS:
            return None
        name = request.params.get("collection")
        scoped = query_scoped(request.query_id, name) if name else ""
        collection = self._collections.get(scoped) if name else None
        if collection is not None and (
            collection.is_hnsw or len(collection) + num_rows > self.hnsw_threshold
        ):
            return None
        if collection is None and num_rows > self.hnsw_threshold:
            return None
        if request.query_id in self._closed_queries:
            return self.refused(request)
        check_collection_name(name, self.name, request.node)
        chunks, matrix = ingest_inputs(request, self.name)
        # No query can end while this runs (the loop thread is where abort runs).
        dim = matrix.shape[1] or None
        if collection is None:
            collection = self._get_or_create(scoped, dim, request.node)
        elif dim is not None:
            check_dim(matrix, collection.dim, scoped, self.name, request.node)
        collection.add(chunks, matrix)  # stays exact (the limits above): no OpenMP work
        return index_outputs(self.name, scoped, len(collection))

    # --- several searches of one collection inline (ThreadedEngine.run_many_inline) ---

    def run_many_inline(self, batch: Sequence[EngineRequest]) -> list[Outcome] | None:
        """Concurrent searches of one exact collection (a serving burst), checked and run
        in one step when ``runs_inline`` would take the batch: the collection found
        once, each request checked as ``run_batch`` checks it (same order, same
        messages; a bad one fails alone), the query rows stacked into one kernel call,
        the hits split per request. Anything else returns None (the general path)."""
        target = self._one_exact_collection(batch)
        if target is None:
            return None
        try:
            return self._searches_inline(batch, target)
        except Exception as err:  # a bug: it fails the batch, as run_batch's caller does
            return [err] * len(batch)

    def _one_exact_collection(self, batch: Sequence[EngineRequest]) -> FaissCollection | None:
        """The one exact collection that every request of ``batch`` searches, if the
        searches are small enough to run inline (``runs_inline``'s limits), else None."""
        collection: FaissCollection | None = None
        num_rows = 0
        for request in batch:
            if request.op is not Op.VECTOR_SEARCH:
                return None
            target = self._exact_search(request)
            if target is None or (collection is not None and target[1] is not collection):
                return None
            num_rows += target[0]
            collection = target[1]
        if collection is None or not is_small_search(num_rows, num_rows * len(collection)):
            return None
        return collection

    def _searches_inline(
        self, batch: Sequence[EngineRequest], collection: FaissCollection
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        jobs: list[tuple[int, SearchJob]] = []  # (place in batch, checked search)
        for i, request in enumerate(batch):
            if request.query_id in self._closed_queries:
                outcomes.append(self.refused(request))
                continue
            try:
                jobs.append((i, self._search_job(request)))
            except EngineError as err:
                outcomes.append(err)
                continue
            outcomes.append({})
        if jobs:
            self._search_in(collection, jobs, outcomes)
        return outcomes

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        if len(batch) != 1 or batch[0].op is not Op.VECTOR_SEARCH:
            return super().run_batch(batch)
        # One search alone (a query's retrieval step): nothing to defer it for.
        try:
            job = self._search_job(batch[0])
        except EngineError as err:
            return [err]
        outcomes: list[Outcome] = [{}]
        self._search_fused(job.collection, [(0, job)], outcomes)
        return outcomes

    def _search(self, job: SearchJob) -> SearchJob:
        return job  # deferred, so the searches of a batch on one collection are one call

    def _run_deferred(self, jobs: list[tuple[int, SearchJob]], outcomes: list[Outcome]) -> None:
        by_collection: dict[str, list[tuple[int, SearchJob]]] = {}
        for i, job in jobs:
            by_collection.setdefault(job.collection, []).append((i, job))
        for name, same_collection in by_collection.items():
            self._search_fused(name, same_collection, outcomes)

    def _search_fused(
        self, name: str, jobs: list[tuple[int, SearchJob]], outcomes: list[Outcome]
    ) -> None:
        collection = self._get(name)
        if collection is None:  # freed by abort while the batch was queued
            for i, _ in jobs:
                outcomes[i] = EngineError(self.name, "search", f"collection {name!r} was freed")
            return
        self._search_in(collection, jobs, outcomes)

    def _search_in(
        self,
        collection: FaissCollection,
        jobs: list[tuple[int, SearchJob]],
        outcomes: list[Outcome],
    ) -> None:
        """The searches of ``jobs`` on ``collection`` as one call, hits split per job."""
        if len(jobs) == 1:  # the common case: no stacking copy
            stacked, k = jobs[0][1].queries, jobs[0][1].k
        else:
            stacked, k = np.concatenate([job.queries for _, job in jobs]), max(j.k for _, j in jobs)
        self._set_omp_threads(len(stacked))
        per_row = collection.search(stacked, k)
        start = 0
        for i, job in jobs:
            outcomes[i] = hits_outputs(per_row[start : start + len(job.queries)], job.k)
            start += len(job.queries)

    def _get(self, name: str) -> FaissCollection | None:
        # One dict lookup is atomic under the GIL; the lock guards changes and iteration.
        return self._collections.get(name)

    def _get_or_create(self, name: str, dim: int | None, node: str) -> FaissCollection:
        with self._collections_lock:
            collection = self._collections.get(name)
            if collection is None:
                if dim is None:
                    raise EngineError(self.name, node, f"cannot create {name!r} from zero vectors")
                collection = self._collections[name] = FaissCollection(dim, self.hnsw_threshold)
            return collection

    def free_query(self, query_id: str) -> None:
        with self._collections_lock:
            for name in names_of_query(self._collections, query_id):
                del self._collections[name]
