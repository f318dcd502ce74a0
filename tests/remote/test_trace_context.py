"""Remote engines send the primitive's trace context on as W3C ``traceparent``: a real
RemoteEmbedder on the runtime with the OTel hook, against the fake
OpenAI-compatible server (fake_openai.py), which records every request's headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from fake_openai import FakeServer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from primflow.api import Embed, Query, build_template
from primflow.api.lower import lower_query
from primflow.engines.remote import ClientSettings, RemoteEmbedder
from primflow.engines.remote.trace_context import trace_headers
from primflow.runtime import Runtime
from primflow.tracing.otel import OtelHook

pytestmark = pytest.mark.remote


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def test_an_embed_request_carries_its_primitive_span(fake: FakeServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    template = build_template(
        "embed_question",
        Embed(items="question_list", vectors="vectors"),
        outputs={"vectors": "vectors"},
    )
    lowered = lower_query(template, Query("What is HNSW?"))
    engine = RemoteEmbedder("embedder", ClientSettings(fake.base_url), "fake-model")
    hooks = [OtelHook(provider.get_tracer("t"))]
    async with Runtime({"embedder": engine}, hooks=hooks) as runtime:
        await runtime.run(lowered.graph, lowered.inputs, query_id="q1")
    [(_, headers)] = fake.headers
    [span] = [s for s in exporter.get_finished_spans() if s.name.startswith("primflow.primitive")]
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == span.context.trace_id
    assert int(span_id, 16) == span.context.span_id  # a one-request batch: its own span


def test_no_current_span_sends_no_trace_context() -> None:
    assert trace_headers() == {}
