"""Tracing on a real server process (fake engines, PRIMFLOW_TRACE=console): the
caller's traceparent becomes the parent of the query's trace, the response names the
server span, and /trace/{query_id} serves the page and the explanation of a recent
query."""

from __future__ import annotations

import json
import re

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("plotly")

from serve_process import fake_server

DOCS = [{"text": "Employees get 28 days of paid annual leave each year.", "source": "leave.md"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


def spans_in(output: str) -> list[dict[str, object]]:
    """The console exporter's JSON spans among the server's output lines."""
    spans: list[dict[str, object]] = []
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\{\s*$", output, flags=re.MULTILINE):
        try:
            span, _ = decoder.raw_decode(output, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(span, dict) and "context" in span:
            spans.append(span)
    return spans


def test_traceparent_in_trace_page_out() -> None:
    server = fake_server(env={"PRIMFLOW_TRACE": "console"})
    with server:
        response = httpx.post(
            f"{server.url}/v1/apps/naive_rag/query",
            json={"question": "How many days of leave?", "documents": DOCS},
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.headers["traceparent"].split("-")[1] == TRACE_ID
        query_id = response.json()["query_id"]
        page = httpx.get(f"{server.url}/trace/{query_id}", timeout=30)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'id="gantt"' in page.text and "<script src=" not in page.text
        explained = httpx.get(f"{server.url}/trace/{query_id}/json", timeout=30).json()
        assert explained["query_id"] == query_id and explained["primitives"]
        missing = httpx.get(f"{server.url}/trace/nope", timeout=30)
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "unknown_query"
    spans = spans_in(server.output)  # the console exporter flushed at exit
    by_name = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    [http_span] = [
        s
        for s in spans
        if str(s["name"]).startswith("primflow.http POST")
        and s["context"]["trace_id"] == f"0x{TRACE_ID}"
    ]
    assert http_span["parent_id"] == f"0x{CALLER_SPAN_ID}"
    [query] = [
        s for s in by_name["primflow.query"] if s["attributes"]["primflow.query_id"] == query_id
    ]
    assert query["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert query["parent_id"] == http_span["context"]["span_id"]
    primitives = [
        s
        for s in spans
        if str(s["name"]).startswith("primflow.primitive")
        and s["context"]["trace_id"] == f"0x{TRACE_ID}"
    ]
    assert {p["attributes"]["primflow.node"] for p in primitives} == {
        p["node"] for p in explained["primitives"]
    }
