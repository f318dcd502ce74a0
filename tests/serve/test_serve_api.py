"""The HTTP API on a real server process with fake engines: answers, streams, the
OpenAI-compatible route through the official client, apps, graphs, metrics, schema."""

from __future__ import annotations

import json

import httpx
import openai
from serve_process import ServerProcess

DOCS = [
    {"text": "Employees get 28 days of paid annual leave each year.", "source": "leave.md"},
    {"text": "The office opens at 08:00 and closes at 18:00.", "source": "office.md"},
]


def ask(server: ServerProcess, app: str = "naive_rag", **body: object) -> httpx.Response:
    payload = {"question": "How many days of leave?", "documents": DOCS, **body}
    return httpx.post(f"{server.url}/v1/apps/{app}/query", json=payload, timeout=30)


def sse_events(lines: list[str]) -> list[tuple[str, dict[str, object]]]:
    events: list[tuple[str, dict[str, object]]] = []
    name = "message"
    for line in lines:
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: ") :])))
            name = "message"
    return events


def test_query_answers_json_with_passages_and_timings(server: ServerProcess) -> None:
    response = ask(server, config={"top_k": 2, "max_tokens": 16})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["app"] == "naive_rag" and body["answer"]
    assert {p["source"] for p in body["passages"]} <= {"leave.md", "office.md"}
    assert body["passages"]
    engines = {p["engine"] for p in body["primitives"]}
    assert {"embedder", "vector_index", "llm"} <= engines
    assert set(body["critical_path"]) <= {p["node"] for p in body["primitives"]}


def test_stream_sends_query_tokens_node_done_then_done(server: ServerProcess) -> None:
    payload = {"question": "How many days of leave?", "documents": DOCS, "stream": True}
    url = f"{server.url}/v1/apps/naive_rag/query"
    with httpx.stream("POST", url, json=payload, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(list(response.iter_lines()))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "query" and kinds[-1] == "done"
    assert "token" in kinds and "node_done" in kinds
    done = events[-1][1]
    tokens = "".join(str(data["text"]) for kind, data in events if kind == "token")
    assert tokens.strip() == done["answer"]
    assert done["query_id"] == events[0][1]["query_id"]
    nodes = [data for kind, data in events if kind == "node_done"]
    assert {"name", "op", "engine", "queue_s", "service_s"} <= set(nodes[0])
    assert {n["name"] for n in nodes} == {p["node"] for p in done["primitives"]}  # type: ignore[union-attr]


def test_openai_client_non_streaming_and_streaming(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    messages = [
        {"role": "system", "content": "You answer from the documents."},
        {"role": "user", "content": "How many days of leave?"},
    ]
    completion = client.chat.completions.create(
        model="naive_rag",
        messages=messages,
        extra_body={"documents": DOCS},  # type: ignore[arg-type]
    )
    assert completion.choices[0].message.content
    assert completion.model == "naive_rag"
    stream = client.chat.completions.create(
        model="naive_rag",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        max_tokens=16,
        extra_body={"documents": DOCS},
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) > 1  # streamed, not one blob
    assert "".join(pieces).strip()


def test_openai_client_sees_unknown_model_as_not_found(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    try:
        client.chat.completions.create(
            model="no_such_app", messages=[{"role": "user", "content": "hi"}]
        )
    except openai.NotFoundError as exc:
        assert "no_such_app" in str(exc)
    else:
        raise AssertionError("an unknown model must be a 404")


def test_apps_graph_and_schema(server: ServerProcess) -> None:
    apps = httpx.get(f"{server.url}/v1/apps").json()["apps"]
    assert {a["name"] for a in apps} == {"naive_rag", "search_augmented"}
    naive = next(a for a in apps if a["name"] == "naive_rag")
    assert naive["needs_documents"] and naive["components"]
    graph = httpx.get(f"{server.url}/v1/apps/naive_rag/graph", params={"optimized": "true"})
    assert graph.status_code == 200
    ops = {node["op"] for node in graph.json()["nodes"]}
    assert "llm_partial_prefill" in ops  # the e-graph: prefill split by the passes
    plain = httpx.get(f"{server.url}/v1/apps/naive_rag/graph", params={"format": "mermaid"})
    assert plain.text.startswith("flowchart") or "-->" in plain.text
    bad = httpx.get(f"{server.url}/v1/apps/naive_rag/graph", params={"format": "png"})
    assert bad.status_code == 422 and "format" in bad.json()["error"]["message"]
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/apps/{app}/query" in schema["paths"]
    assert "/v1/chat/completions" in schema["paths"]
    upload = schema["paths"]["/v1/collections/{name}/documents"]["post"]
    assert set(upload["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert schema["components"]["schemas"]["QueryRequest"]["examples"]


def test_metrics_count_queries_and_batches(server: ServerProcess) -> None:
    assert ask(server).status_code == 200
    text = httpx.get(f"{server.url}/metrics").text
    assert 'primflow_queries_total{app="naive_rag",status="ok"}' in text
    assert "primflow_query_latency_seconds_bucket" in text
    assert 'primflow_engine_batch_size_count{engine="llm"}' in text
    assert 'primflow_engine_queue_depth{engine="embedder"}' in text
    assert 'primflow_engine_kv_occupancy{engine="llm"}' in text
    assert "primflow_generated_text_pieces_total" in text


def test_invalid_config_names_the_field(server: ServerProcess) -> None:
    response = ask(server, config={"top_k": 0})
    assert response.status_code == 422
    assert "config.top_k" in response.json()["error"]["message"]
    overlap = ask(server, config={"chunk_size": 10, "chunk_overlap": 20})
    assert overlap.status_code == 422
    assert "chunk_overlap" in overlap.json()["error"]["message"]


def test_limits_and_content_types(server: ServerProcess) -> None:
    url = f"{server.url}/v1/apps/naive_rag/query"
    huge = httpx.post(url, content=b"x" * (2 << 20), headers={"content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "too_large"
    form = httpx.post(url, content=b"question=hi", headers={"content-type": "text/plain"})
    assert form.status_code == 415
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_an_app_that_reads_documents_needs_some(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/v1/apps/naive_rag/query", json={"question": "hi"}, timeout=30
    )
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "body.documents"
    web = httpx.post(
        f"{server.url}/v1/apps/search_augmented/query", json={"question": "hi"}, timeout=30
    )
    assert web.status_code == 200  # web search needs no documents
