"""One served query followed in an OpenTelemetry backend, over OTLP/HTTP.

``primflow serve`` (fake engines) runs with ``PRIMFLOW_TRACE=otlp`` and
``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a backend the test starts on another free
loopback port: a minimal OTLP receiver (``otlp_receiver.py``, which keeps links), and
Arize Phoenix when installed (the ``phoenix`` extra; it keeps no span links, so batch
spans are matched to primitives by ``primflow.batch.id`` there). A query is sent with
a W3C ``traceparent``; read back from the backend: the trace id is the caller's, the
HTTP request span is the parent of the query span, every primitive has a span with its
op, engine and batch, the LLM ones with token usage, and each batch span is linked to
(or, in Phoenix, names) the primitives it ran.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from otlp_receiver import OtlpReceiver, PhoenixServer, ReceivedSpan
from serve_process import fake_server

DOCS = [{"text": "Employees get 28 days of paid annual leave each year.", "source": "leave.md"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
MAX_INGEST_S = 30.0  # Phoenix writes received spans to its database asynchronously

Backend = OtlpReceiver | PhoenixServer


@pytest.fixture(params=["receiver", "phoenix"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "receiver":
        with OtlpReceiver() as receiver:
            yield receiver
        return
    if importlib.util.find_spec("phoenix") is None:
        pytest.skip("arize-phoenix is not installed (pip install 'primflow[phoenix]')")
    with PhoenixServer(tmp_path) as phoenix:
        yield phoenix


def served_query(backend: Backend) -> str:
    """Answer one query on a traced server exporting to ``backend``; its query id."""
    env = {
        "PRIMFLOW_TRACE": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": backend.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export every 0.1 s, not every 5 s
    }
    with fake_server(env=env) as server:
        response = httpx.post(
            f"{server.url}/v1/apps/naive_rag/query",
            json={"question": "How many days of leave?", "documents": DOCS},
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        query_id: str = response.json()["query_id"]
    return query_id  # the server stopped: its exporter flushed at exit


def wait_for_trace(
    backend: Backend, is_complete: Callable[[list[ReceivedSpan]], bool]
) -> list[ReceivedSpan]:
    deadline = time.monotonic() + MAX_INGEST_S
    spans = backend.spans()
    while not is_complete(spans) and time.monotonic() < deadline:
        time.sleep(0.2)
        spans = backend.spans()
    return spans


def primitives_of(spans: list[ReceivedSpan], query_span: ReceivedSpan) -> list[ReceivedSpan]:
    return [
        s
        for s in spans
        if s.name.startswith("primflow.primitive ") and s.parent_id == query_span.span_id
    ]


def test_a_served_query_is_followed_in_the_backend(backend: Backend) -> None:
    query_id = served_query(backend)

    def query_span_of(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
        found = [
            s
            for s in spans
            if s.name == "primflow.query" and s.attributes.get("primflow.query_id") == query_id
        ]
        return found[0] if found else None

    def is_complete(spans: list[ReceivedSpan]) -> bool:
        query = query_span_of(spans)
        if query is None:
            return False
        primitives = primitives_of(spans, query)
        batch_ids = {s.attributes["primflow.batch.id"] for s in spans if s.name == "primflow.batch"}
        return len(primitives) == query.attributes["primflow.num_primitives"] and all(
            p.attributes["primflow.batch.id"] in batch_ids for p in primitives
        )

    spans = wait_for_trace(backend, is_complete)
    query = query_span_of(spans)
    assert query is not None, f"no query span among {len(spans)} spans"
    assert query.trace_id == TRACE_ID
    [http] = [s for s in spans if s.span_id == query.parent_id]
    assert http.name == "primflow.http POST /v1/apps/naive_rag/query"
    assert (http.trace_id, http.parent_id) == (TRACE_ID, CALLER_SPAN_ID)
    assert http.attributes["http.response.status_code"] == 200

    primitives = primitives_of(spans, query)
    assert len(primitives) == query.attributes["primflow.num_primitives"] > 0
    ops = set()
    for span in primitives:
        assert span.trace_id == TRACE_ID
        ops.add(span.attributes["primflow.op"])
        assert span.name == f"primflow.primitive {span.attributes['primflow.op']}"
        assert span.attributes["primflow.engine"]
        assert span.attributes["primflow.batch.size"] >= 1
        if span.attributes["primflow.engine"] == "llm":
            assert span.attributes["gen_ai.usage.input_tokens"] >= 0
            assert span.attributes["gen_ai.usage.output_tokens"] >= 0
    assert {"embed", "vector_search", "llm_decode"} <= ops
    decodes = [p for p in primitives if p.attributes["primflow.op"] == "llm_decode"]
    assert all(d.attributes["gen_ai.usage.output_tokens"] > 0 for d in decodes)

    batches = {s.attributes["primflow.batch.id"]: s for s in spans if s.name == "primflow.batch"}
    for span in primitives:
        batch = batches[span.attributes["primflow.batch.id"]]
        assert batch.parent_id is None  # a trace of its own: it may serve several queries
        assert query_id in batch.attributes["primflow.batch.query_ids"]
        assert batch.attributes["primflow.engine"] == span.attributes["primflow.engine"]
        if span.links is not None and batch.links is not None:  # Phoenix drops links
            assert span.links == [(batch.trace_id, batch.span_id)]
            assert (span.trace_id, span.span_id) in batch.links
