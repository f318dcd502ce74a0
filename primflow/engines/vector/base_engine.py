"""The base of both vector index engines: op dispatch, request checks, shared collections.

A backend (FAISS, pgvector) says how to store and search a collection; this class turns
requests into checked jobs and results back into outcomes. Invariants:

- ``run_batch`` gives one outcome per request, in order; an :class:`EngineError` fails
  only its request. Requests are dispatched in batch order, so an ingest earlier in a
  batch is visible to a search later in it.
- A backend's ``_search`` answers a search at once, or hands its :class:`SearchJob`
  back to defer it; the deferred searches of a batch run together in ``_run_deferred``
  after every request has been dispatched (FAISS stacks them into one call).
- Ingest refuses a closed query before touching the backend; a search names a
  collection with a known dimension, and its query vectors have that dimension.
- Shared collections outlive queries (``create_shared``/``add_shared``,
  ``drop_shared``/``remove_shared``); the async forms run on the engine thread.
- Both engines take the same inputs and check them with the same rules and messages
  (common.py), so they fail alike.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

from primflow.engines.base import EngineError, EngineKind, EngineRequest, Outputs
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.engines.vector.common import (
    Matrix,
    check_collection_name,
    checked_chunks,
    ingest_inputs,
    query_scoped,
    search_handle,
    top_k,
    unit_rows,
)
from primflow.graph.ir import Op
from primflow.graph.ops import VECTORS
from primflow.values import Chunk, IndexHandle


class IngestJob(NamedTuple):
    """A checked VECTOR_INGEST: ``chunks[i]`` has the unit vector ``vectors[i]``.
    (Named tuples: built once per request, 5x cheaper than frozen dataclasses.)"""

    name: str  # as the request gave it
    collection: str  # the per-query name, ``<query_id>/<name>``
    chunks: Sequence[Chunk]
    vectors: Matrix


class SearchJob(NamedTuple):
    """A checked VECTOR_SEARCH: unit query rows of the collection's dimension."""

    collection: str
    queries: Matrix
    k: int  # per query row


class VectorEngine(ThreadedEngine):
    kind = EngineKind.VECTOR_INDEX

    # --- what a backend provides ---

    @abstractmethod
    def collection_dim(self, name: str) -> int | None:
        """The dimension of collection ``name``, or None if there is no such collection."""

    @abstractmethod
    def _add_shared(self, name: str, chunks: Sequence[Chunk], vectors: Matrix) -> int:
        """Add checked rows to the shared collection ``name``; its size after."""

    @abstractmethod
    def _ingest(self, request: EngineRequest) -> Outputs:
        """Run VECTOR_INGEST (start with :meth:`_ingest_job`)."""

    @abstractmethod
    def _search(self, job: SearchJob) -> Outputs | SearchJob:
        """The hits of ``job`` now, or ``job`` itself to run it in ``_run_deferred``."""

    def _run_deferred(self, jobs: list[tuple[int, SearchJob]], outcomes: list[Outcome]) -> None:
        """Fill ``outcomes[i]`` for each deferred ``(i, job)`` of the batch. Only engines
        whose ``_search`` defers override it; reaching this one breaks that contract."""
        raise TypeError(
            f"{type(self).__name__}._search deferred {len(jobs)} searches but the engine "
            "does not override _run_deferred"
        )

    @abstractmethod
    def drop_shared(self, name: str) -> None:
        """Remove the shared collection ``name`` (nothing if there is none)."""

    # --- shared collections ---

    def create_shared(self, name: str, chunks: Sequence[Chunk], vectors: Any) -> IndexHandle:
        """Create (or extend) a shared collection that outlives queries; search it with
        ``IndexHandle(engine, name)``."""
        check_collection_name(name, self.name, "create_shared")
        chunks = checked_chunks(chunks, self.name, "create_shared")
        matrix = unit_rows(vectors, self.name, "create_shared")
        if len(matrix) != len(chunks):
            raise EngineError(
                self.name, "create_shared", f"{len(chunks)} chunks, {len(matrix)} vectors"
            )
        return IndexHandle(self.name, name, self._add_shared(name, chunks, matrix))

    async def add_shared(self, name: str, chunks: Sequence[Chunk], vectors: Any) -> IndexHandle:
        """:meth:`create_shared` on the engine's thread, so it is safe while the engine
        serves queries (it runs between their batches)."""
        return await self.on_engine_thread(lambda: self.create_shared(name, chunks, vectors))

    async def remove_shared(self, name: str) -> None:
        """:meth:`drop_shared` on the engine's thread (see :meth:`add_shared`)."""
        await self.on_engine_thread(lambda: self.drop_shared(name))

    # --- ops ---

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        outcomes: list[Outcome] = [{} for _ in batch]
        deferred: list[tuple[int, SearchJob]] = []
        for i, request in enumerate(batch):
            try:
                outcome = self._run_one(request)
            except EngineError as err:
                outcomes[i] = err
                continue
            if isinstance(outcome, SearchJob):
                deferred.append((i, outcome))
            else:
                outcomes[i] = outcome
        if deferred:
            self._run_deferred(deferred, outcomes)
        return outcomes

    def _run_one(self, request: EngineRequest) -> Outputs | SearchJob:
        if request.op is Op.VECTOR_INGEST:
            return self._ingest(request)
        if request.op is Op.VECTOR_SEARCH:
            return self._search(self._search_job(request))
        raise EngineError(self.name, request.node, f"cannot run op {request.op}")

    def _ingest_job(self, request: EngineRequest) -> IngestJob:
        name = check_collection_name(request.params.get("collection"), self.name, request.node)
        if self.is_closed(request.query_id):
            raise self._query_ended(request)
        chunks, vectors = ingest_inputs(request, self.name)
        return IngestJob(name, query_scoped(request.query_id, name), chunks, vectors)

    def _search_job(self, request: EngineRequest) -> SearchJob:
        handle = search_handle(request, self.name)
        dim = self.collection_dim(handle.collection)
        if dim is None:
            raise EngineError(self.name, request.node, f"no collection {handle.collection!r}")
        queries = unit_rows(request.inputs.get(VECTORS), self.name, request.node, dim)
        return SearchJob(handle.collection, queries, top_k(request, self.name))

    def _query_ended(self, request: EngineRequest) -> EngineError:
        return EngineError(self.name, request.node, f"query {request.query_id!r} has ended")
