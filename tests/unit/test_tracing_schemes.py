"""Tracing of real queries on the fakes: token usage on LLM spans, baseline runs (a
query span, a span per module call, its primitives under it) next to primflow's, and
growing queries (an agent's rounds) as one trace on every scheme."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from primflow.graph.ir import Op
from primflow.session import fake_factory
from primflow.session.answer import Answer
from primflow.session.session import Session
from primflow.session.stack import EngineStack
from primflow.tracing.otel import GEN_AI_INPUT_TOKENS, GEN_AI_OUTPUT_TOKENS, OtelHook

DOCUMENTS = ["Employees get 25 days of paid leave. " * 30, "HNSW is a graph index. " * 30]
QUESTION = "How much leave?"
PREFILLS = {str(op) for op in (Op.LLM_PREFILL, Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL)}
DECODES = {str(Op.LLM_DECODE), str(Op.LLM_PARTIAL_DECODE)}


async def traced_answer(
    scheme: str, app: str = "naive_rag", question: str = QUESTION
) -> tuple[Answer, list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = OtelHook(provider.get_tracer("test"))
    stack = EngineStack.for_apps([app], fake_factory(latency_scale=0.01))
    async with stack, Session(stack, hooks=[hook]) as session:
        async with asyncio.timeout(60):  # a liveness bound: a raising hook used to hang it
            answer = await session.ask(app, question, DOCUMENTS, scheme=scheme)
    return answer, list(exporter.get_finished_spans())


def spans_of(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


@pytest.mark.parametrize("scheme", ["primflow", "sequential", "parallel"])
async def test_llm_spans_carry_the_engines_token_counts(scheme: str) -> None:
    answer, spans = await traced_answer(scheme)
    primitives = spans_of(spans, "primflow.primitive ")
    prefills = [s for s in primitives if s.attributes["primflow.op"] in PREFILLS]
    decodes = [s for s in primitives if s.attributes["primflow.op"] in DECODES]
    assert prefills and decodes
    for span in prefills + decodes:
        assert GEN_AI_INPUT_TOKENS in span.attributes and GEN_AI_OUTPUT_TOKENS in span.attributes
    # The fake LLM counts a word as a token: the answer's decode (the last one to end)
    # generated its words.
    answer_decode = max(decodes, key=lambda s: s.end_time or 0)
    assert answer_decode.attributes[GEN_AI_OUTPUT_TOKENS] == len(answer.text.split())
    assert answer_decode.attributes[GEN_AI_INPUT_TOKENS] == 0
    assert all(s.attributes[GEN_AI_INPUT_TOKENS] > 0 for s in prefills)
    assert all(s.attributes[GEN_AI_OUTPUT_TOKENS] == 0 for s in prefills)
    others = [s for s in primitives if s not in prefills + decodes]
    assert others and all(GEN_AI_INPUT_TOKENS not in s.attributes for s in others)
    [query] = spans_of(spans, "primflow.query")
    assert query.attributes["primflow.num_input_tokens"] == sum(
        s.attributes[GEN_AI_INPUT_TOKENS] for s in prefills
    )
    assert query.attributes["primflow.num_output_tokens"] == sum(
        s.attributes[GEN_AI_OUTPUT_TOKENS] for s in decodes
    )


@pytest.mark.parametrize("scheme", ["sequential", "parallel"])
async def test_a_baseline_query_has_a_span_per_module_call(scheme: str) -> None:
    answer, spans = await traced_answer(scheme)
    [query] = spans_of(spans, "primflow.query")
    assert query.attributes["primflow.scheme"] == scheme
    assert query.attributes["primflow.query_id"] == answer.query_id
    trace_id = query.context.trace_id
    modules = spans_of(spans, "primflow.module ")
    primitives = spans_of(spans, "primflow.primitive ")
    assert {s.context.trace_id for s in modules + primitives} == {trace_id}
    assert all(m.parent is not None and m.parent.span_id == query.context.span_id for m in modules)
    by_span_id = {m.context.span_id: m for m in modules}
    # Every engine call ran in its module's span: one module per component it came from.
    for span in primitives:
        assert span.parent is not None and span.parent.span_id in by_span_id
        module = by_span_id[span.parent.span_id]
        node = answer.graph.node(span.attributes["primflow.node"])
        assert module.attributes["primflow.module"] == (node.origin or node.name)
        assert module.start_time <= span.start_time <= span.end_time <= module.end_time
        assert span.attributes["primflow.batch.size"] == 1  # a baseline calls alone
    engine_nodes = {n.name for n in answer.graph if n.engine is not None}
    assert {s.attributes["primflow.node"] for s in primitives} == engine_nodes
    components = {n.origin or n.name for n in answer.graph if n.engine is not None}
    assert sorted(m.attributes["primflow.module"] for m in modules) == sorted(components)
    assert all(query.start_time <= m.start_time <= m.end_time <= query.end_time for m in modules)


async def test_primflow_queries_have_no_module_spans() -> None:
    _, spans = await traced_answer("primflow")
    [query] = spans_of(spans, "primflow.query")
    assert query.attributes["primflow.scheme"] == "primflow"
    assert not spans_of(spans, "primflow.module ")
    primitives = spans_of(spans, "primflow.primitive ")
    assert all(
        s.parent is not None and s.parent.span_id == query.context.span_id for s in primitives
    )


@pytest.mark.parametrize("scheme", ["primflow", "sequential", "parallel"])
async def test_a_growing_query_is_one_trace_with_every_rounds_primitives(scheme: str) -> None:
    answer, spans = await traced_answer(scheme, "tool_agent", "What is HNSW?")
    assert len(answer.rounds) >= 2  # the agent took steps: the graph grew while it ran
    [query] = spans_of(spans, "primflow.query")
    primitives = spans_of(spans, "primflow.primitive ")
    assert {s.context.trace_id for s in primitives} == {query.context.trace_id}
    engine_nodes = {n.name for n in answer.graph if n.engine is not None}
    assert {s.attributes["primflow.node"] for s in primitives} == engine_nodes
    assert query.attributes["primflow.num_primitives"] == len(engine_nodes)
    if scheme != "primflow":  # every round's modules, under the one query span
        modules = spans_of(spans, "primflow.module ")
        assert modules and all(m.parent.span_id == query.context.span_id for m in modules)
