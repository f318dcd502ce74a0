"""Persistent collections through the real server (fake LLM and embedder, real FAISS):
upload files or inline documents once, list, query without indexing, delete; a restart
keeps them; bad names, file names, types and sizes are refused, and a failed upload
leaves nothing behind."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import wait_for
from serve_process import ServerProcess

MAX_UPLOAD_BYTES = 64 * 1024
FILES = {
    "leave.md": "# Leave\n\nEmployees get 28 days of paid annual leave each year.",
    "office.txt": "The office opens at 08:00 and closes at 18:00.",
    "faq.jsonl": '{"text": "Parking is free for staff.", "source": "parking"}\n',
}
QUESTION = "How many days of paid annual leave do employees get?"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("collections")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    args = ["--engine-backend", "fake", "--apps", "naive_rag,search_augmented"]
    args += ["--collections-dir", str(root), "--max-upload-bytes", str(MAX_UPLOAD_BYTES)]
    with ServerProcess(*args) as running:
        yield running


def upload(server: ServerProcess, name: str, files: dict[str, str | bytes]) -> httpx.Response:
    parts = [("files", (n, d.encode() if isinstance(d, str) else d)) for n, d in files.items()]
    return httpx.post(f"{server.url}/v1/collections/{name}/documents", files=parts, timeout=30)


def ask(server: ServerProcess, **body: Any) -> httpx.Response:
    url = f"{server.url}/v1/apps/{body.pop('app', 'naive_rag')}/query"
    return httpx.post(url, json={"question": QUESTION, **body}, timeout=30)


def names(server: ServerProcess) -> list[str]:
    listed = httpx.get(f"{server.url}/v1/collections").json()["collections"]
    return [c["name"] for c in listed]


def raw_post(server: ServerProcess, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST to ``path`` exactly as written (httpx would resolve ``..`` segments)."""
    address = urlsplit(server.url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_upload_once_then_queries_skip_indexing(server: ServerProcess, root: Path) -> None:
    created = upload(server, "handbook", dict(FILES))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["is_new"] and body["num_documents_added"] == 3
    assert body["collection"]["backend"] == "faiss" and body["collection"]["num_chunks"] >= 3
    assert "handbook" in names(server) and (root / "handbook" / "index.faiss").is_file()
    answer = ask(server, collection="handbook")
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["passages"] and {p["source"] for p in result["passages"]} <= {
        "leave.md",
        "office.txt",
        "parking",
    }
    ops = [p["op"] for p in result["primitives"]]
    assert "vector_ingest" not in ops and ops.count("embed") == 1  # the question alone
    more = httpx.post(
        f"{server.url}/v1/collections/handbook/documents",
        json={"documents": [{"text": "Lunch is served at noon.", "source": "food.md"}]},
    )
    assert more.status_code == 200 and not more.json()["is_new"]
    assert more.json()["collection"]["num_documents"] == 4
    again = upload(server, "handbook", {"leave.md": FILES["leave.md"]})
    assert again.status_code == 409 and "already holds leave.md" in again.json()["error"]["message"]


def test_a_collection_survives_a_restart(tmp_path: Path) -> None:
    args = ("--engine-backend", "fake", "--apps", "naive_rag", "--collections-dir", str(tmp_path))
    with ServerProcess(*args) as first:
        assert upload(first, "kept", dict(FILES)).status_code == 201
    with ServerProcess(*args) as second:
        assert names(second) == ["kept"]
        answer = ask(second, collection="kept")
        assert answer.status_code == 200, answer.text
        assert answer.json()["passages"]


def test_path_like_collection_names_get_422(server: ServerProcess, root: Path) -> None:
    documents = {"documents": [{"text": "some text"}]}
    for path in (
        "/v1/collections/../documents",
        "/v1/collections/a/b/documents",
        "/v1/collections/..%2F..%2Fetc/documents",
        "/v1/collections/Handbook/documents",
        "/v1/collections/%2Fetc%2Fpasswd/documents",
    ):
        status, body = raw_post(server, path, documents)
        assert status == 422, (path, body)
        assert "is not valid: use lowercase letters" in body["error"]["message"]
    deleted = httpx.delete(f"{server.url}/v1/collections/{quote('../x', safe='')}")
    assert deleted.status_code == 422
    assert sorted(p.name for p in root.iterdir()) == sorted(names(server))  # nothing else made


def test_bad_files_are_refused_and_leave_nothing(server: ServerProcess, root: Path) -> None:
    png = upload(server, "mixed", {"ok.md": "fine text", "logo.png": b"\x89PNG..."})
    assert png.status_code == 415 and "'.png'" in png.json()["error"]["message"]
    for bad_name in ("../../secret.md", "/etc/passwd.txt", "notes/../../x.md"):
        refused = upload(server, "mixed", {bad_name: "text"})
        assert refused.status_code == 422, (bad_name, refused.text)
        assert "looks like a path" in refused.json()["error"]["message"]
    broken_pdf = upload(server, "mixed", {"scan.pdf": b"not a pdf at all"})
    assert broken_pdf.status_code == 422 and "readable PDF" in broken_pdf.text
    huge = upload(server, "mixed", {"big.txt": "x" * (MAX_UPLOAD_BYTES + 1)})
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "too_large"
    text_field = httpx.post(
        f"{server.url}/v1/collections/mixed/documents",
        data={"note": "hi"},
        files=[("files", ("ok.md", b"fine text"))],
    )
    assert text_field.status_code == 422 and "only file parts" in text_field.text
    assert "mixed" not in names(server) and not (root / "mixed").exists()


def test_an_engine_failure_mid_upload_leaves_nothing_half_indexed(
    server: ServerProcess, root: Path
) -> None:
    assert upload(server, "steady", {"a.md": "Steady text about leave."}).status_code == 201
    before = {c["name"]: c for c in httpx.get(f"{server.url}/v1/collections").json()["collections"]}
    control = f"{server.url}/_testing/engines/embedder"
    httpx.post(f"{control}/fail", json={"marker": "poison-marker", "reason": "embedder down"})
    try:
        for name in ("poisoned", "steady"):
            failed = upload(server, name, {"b.md": "poison-marker text"})
            assert failed.status_code == 500, failed.text
            assert failed.json()["error"]["engine"] == "embedder"
    finally:
        httpx.post(f"{control}/recover")
    after = {c["name"]: c for c in httpx.get(f"{server.url}/v1/collections").json()["collections"]}
    assert "poisoned" not in after and not (root / "poisoned").exists()
    assert after["steady"]["num_chunks"] == before["steady"]["num_chunks"]
    assert ask(server, collection="steady").status_code == 200


def test_query_and_delete_errors(server: ServerProcess) -> None:
    assert upload(server, "doomed", {"a.md": "Doomed text."}).status_code == 201
    both = ask(server, collection="doomed", documents=[{"text": "inline"}])
    assert (
        both.status_code == 422 and both.json()["error"]["fields"][0]["field"] == "body.collection"
    )
    web = ask(server, app="search_augmented", collection="doomed")
    assert web.status_code == 422 and "cannot read a collection" in web.json()["error"]["message"]
    bad = ask(server, collection="../doomed")
    assert bad.status_code == 422 and "is not valid" in bad.json()["error"]["message"]
    assert httpx.delete(f"{server.url}/v1/collections/doomed").json() == {"deleted": "doomed"}
    missing = ask(server, collection="doomed")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "unknown_collection"
    assert str(Path.home()) not in missing.text  # the server's folders stay private
    assert httpx.delete(f"{server.url}/v1/collections/doomed").status_code == 404


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(min_size=1, max_size=60).filter(lambda n: n.strip("./") != ""))
def test_hostile_collection_names_get_a_clear_4xx(server: ServerProcess, name: str) -> None:
    url = f"{server.url}/v1/collections/{quote(name, safe='')}/documents"
    response = httpx.post(url, json={"documents": [{"text": "x"}]}, timeout=30)
    if response.status_code in (200, 201):  # a valid name by chance: clean it up
        httpx.delete(f"{server.url}/v1/collections/{quote(name, safe='')}")
        return
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
    assert httpx.get(f"{server.url}/health").status_code == 200


async def test_a_collection_being_read_cannot_be_deleted(server: ServerProcess) -> None:
    assert upload(server, "busy", {"a.md": "Busy text about leave."}).status_code == 201
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await client.post("/_testing/engines/llm/hold")
        try:
            question = {"question": QUESTION, "collection": "busy"}
            running = asyncio.ensure_future(client.post("/v1/apps/naive_rag/query", json=question))
            await wait_for(client, lambda s: s["server"]["num_active_queries"] == 1)
            refused = await client.delete("/v1/collections/busy")
            assert refused.status_code == 409, refused.text
            assert "read by 1 running queries" in refused.json()["error"]["message"]
        finally:
            await client.post("/_testing/engines/llm/release")
        assert (await running).status_code == 200
        assert (await client.delete("/v1/collections/busy")).status_code == 200
