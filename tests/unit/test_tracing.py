"""Tracing on the fakes: the span tree, batch links, context in, ids, logs, off by default."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("opentelemetry.sdk")

from explain_runs import QUESTIONS, explain_pair
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from primflow.engines.placement import CoreBudget
from primflow.tracing import TRACE_ENV, TraceIdFilter, TracingUnavailable, tracing_hooks
from primflow.tracing.ids import QueryIds
from primflow.tracing.otel import OtelHook


def tracer() -> tuple[OtelHook, InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelHook(provider.get_tracer("test")), exporter, provider


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(name)]


async def test_one_trace_per_query_with_a_span_per_primitive() -> None:
    hook, exporter, _ = tracer()
    explanations, _ = await explain_pair([hook])
    spans = exporter.get_finished_spans()
    queries = by_name(spans, "primflow.query")
    roots = [r for r in queries if r.attributes["primflow.scheme"] == "primflow"]
    assert len(roots) == len(QUESTIONS)
    # Their sequential references (the bound) are traced as baseline queries.
    references = [r for r in queries if r.attributes["primflow.scheme"] == "sequential"]
    assert len(references) == len(QUESTIONS)
    assert len({r.context.trace_id for r in roots}) == len(roots)
    for explanation in explanations:
        [root] = [r for r in roots if r.attributes["primflow.query_id"] == explanation.query_id]
        children = [
            s
            for s in by_name(spans, "primflow.primitive ")
            if s.context.trace_id == root.context.trace_id
        ]
        assert all(
            s.parent is not None and s.parent.span_id == root.context.span_id for s in children
        )
        assert sorted(s.attributes["primflow.node"] for s in children) == sorted(
            p.node for p in explanation.primitives
        )
        for span in children:
            attrs = span.attributes
            for key in (
                "primflow.op",
                "primflow.engine",
                "primflow.instance",
                "primflow.batch.id",
                "primflow.batch.size",
                "primflow.queue_wait_s",
                "primflow.service_s",
                "primflow.exec_s",
                "primflow.pass",
                "primflow.num_prompt_tokens",
            ):
                assert key in attrs, key
            assert root.start_time <= span.start_time <= span.end_time <= root.end_time
        passes = {s.attributes["primflow.node"]: s.attributes["primflow.pass"] for s in children}
        assert passes["synthesize.leaf0.prefill.full"] == "split_prefill"
        assert passes["embed_question"] == "lowering"
        assert root.attributes["primflow.latency_s"] == pytest.approx(
            explanation.latency_s, abs=1e-5
        )


async def test_batch_spans_link_the_primitives_they_served_across_queries() -> None:
    hook, exporter, _ = tracer()
    await explain_pair([hook])
    spans = exporter.get_finished_spans()
    primitives = {s.context.span_id: s for s in by_name(spans, "primflow.primitive ")}
    batches = by_name(spans, "primflow.batch")
    assert batches and all(b.parent is None for b in batches)  # traces of their own
    shared = [b for b in batches if len(b.attributes["primflow.batch.query_ids"]) > 1]
    assert shared, "the two concurrent questions share a batch"
    for batch in batches:
        served = [primitives[link.context.span_id] for link in batch.links]
        assert len(served) == batch.attributes["primflow.batch.num_requests"]
        for span in served:
            assert span.attributes["primflow.batch.id"] == batch.attributes["primflow.batch.id"]
            assert [link.context.span_id for link in span.links] == [batch.context.span_id]
    for batch in shared:
        traces = {primitives[link.context.span_id].context.trace_id for link in batch.links}
        assert len(traces) > 1


async def test_a_query_continues_the_current_context() -> None:
    hook, exporter, provider = tracer()
    parent = provider.get_tracer("caller").start_span("caller")
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        await explain_pair([hook], with_bound=False)
    finally:
        otel_context.detach(token)
        parent.end()
    roots = by_name(exporter.get_finished_spans(), "primflow.query")
    assert roots and all(r.parent is not None for r in roots)
    assert {r.parent.span_id for r in roots if r.parent} == {parent.get_span_context().span_id}
    assert {r.context.trace_id for r in roots} == {parent.get_span_context().trace_id}


async def test_log_records_get_the_trace_id_of_their_query() -> None:
    hook, _, _ = tracer()
    explanations, _ = await explain_pair([hook], with_bound=False)
    query_id = explanations[0].query_id
    log_filter = TraceIdFilter(hook)
    record = logging.LogRecord("primflow", logging.INFO, __file__, 1, "done", None, None)
    record.query_id = query_id
    assert log_filter.filter(record) and record.trace_id == hook.trace_id_of(query_id)
    assert len(record.trace_id) == 32
    bare = logging.LogRecord("primflow", logging.INFO, __file__, 1, "hi", None, None)
    assert log_filter.filter(bare) and bare.trace_id == ""


def test_tracing_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_ENV, raising=False)
    assert tracing_hooks() == []
    assert tracing_hooks("off") == []
    monkeypatch.setenv(TRACE_ENV, "zipkin")
    with pytest.raises(TracingUnavailable, match="PRIMFLOW_TRACE='zipkin'"):
        tracing_hooks()


def test_engine_ids_of_reused_query_ids_map_back() -> None:
    ids = QueryIds()
    ids.start("q")
    ids.start("q~x")
    assert ids.query_of("q") == "q"
    assert ids.query_of("q~3") == "q"
    assert ids.query_of("q~x") == "q~x"
    assert ids.query_of("other") is None
    ids.end("q")
    assert ids.query_of("q~3") is None


def test_core_budget_records_lease_and_deferral_waits() -> None:
    import threading

    now = [0.0]
    budget = CoreBudget(num_cores=1, clock=lambda: now[0])
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with budget.lease("embedder"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    waiter = threading.Thread(target=lambda: budget.lease("llm").__enter__())
    waiter.start()
    while not budget._released._waiters:  # type: ignore[attr-defined]  # the llm waits
        threading.Event().wait(0.001)
    now[0] = 2.0
    release.set()
    thread.join(5)
    waiter.join(5)
    [wait] = budget.core_waits()
    assert (wait.engine, wait.start_s, wait.end_s) == ("llm", 0.0, 2.0)
    assert budget.core_waits(since_s=2.0) == []
