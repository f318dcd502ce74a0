"""OpenTelemetry spans for queries, primitives and batches, from the runtime's hooks.

``OtelHook`` turns runtime events into spans (import this module only with the
``trace`` extra installed; ``primflow.tracing.setup`` does that for you):

- one trace per query: a ``primflow.query`` root span, a child of the context current
  when the query starts (an incoming HTTP request's ``traceparent``, see ``asgi.py``);
- one ``primflow.primitive`` child span per engine primitive, from the moment it was
  ready to its end, with its op, engine, instance, batch id and size, queue wait,
  execution and service time, prompt tokens (the runtime's estimate), items and the
  pass that created it (provenance: pass, source, share, stage); an LLM phase whose
  engine counts tokens also carries the OpenTelemetry GenAI usage attributes
  (``gen_ai.usage.input_tokens`` / ``output_tokens``: the tokens it really prefilled
  and generated), and the query span their totals over the query;
- one ``primflow.batch`` span per batch an engine scheduler formed, in a trace of its
  own since a batch may serve several queries, linked to every primitive it served
  (and each primitive linked back to it).

A baseline scheme's query (``baselines/executor.py``; the hook ``sees_baselines``) gets
the same query span (``primflow.scheme`` says which scheme ran it; ``primflow`` for the
runtime) with a ``primflow.module`` child span per template component it called, whose
primitives are its children; each engine call is a batch of one.

While an engine's ``submit`` runs, the current context is the span of the primitive
(a one-request batch) or of the batch, so a remote engine's HTTP client sends it on
as ``traceparent`` (``engines/remote/trace_context.py``).

Times: hooks report clock seconds (the loop's monotonic clock); spans get wall-clock
nanoseconds through the offset between the two taken at each query's start. Spans of
a primitive end when its query ends, with their measured end times, since its service
time needs its parents' end times.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer

from primflow.engines.base import TokenUsage
from primflow.graph.ir import INLINE_OPS, Graph
from primflow.runtime.hooks import Hook
from primflow.runtime.query_state import NodeStatus, NodeTiming, QueryResult
from primflow.session.timing import service_times
from primflow.tracing.ids import QueryIds

if TYPE_CHECKING:
    from primflow.engines.scheduler import Batch

TRACER_NAME = "primflow"
# The OpenTelemetry GenAI semantic conventions' token counts of one model call.
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
# Trace ids of recently started queries, for log records (``logs.py``).
MAX_NUM_REMEMBERED_TRACES = 4096


@dataclass
class _BatchSpan:
    span: Span
    num_open: int
    end_s: float = 0.0


@dataclass
class _QueryTrace:
    root: Span
    context: otel_context.Context
    graph: Graph
    offset_ns: int  # wall-clock ns minus clock ns at the query's start
    primitives: dict[str, Span] = field(default_factory=dict)  # node -> open span
    modules: dict[str, Span] = field(default_factory=dict)  # baselines: running modules
    batches: dict[str, _BatchSpan] = field(default_factory=dict)  # node -> its batch
    timings: dict[str, NodeTiming] = field(default_factory=dict)  # of ended nodes

    def ns(self, clock_s: float) -> int:
        return int(clock_s * 1e9) + self.offset_ns


class OtelHook(Hook):
    """Emits the spans described in the module docstring through ``tracer``."""

    sees_baselines = True

    def __init__(self, tracer: Tracer | None = None) -> None:
        self.tracer = tracer or trace.get_tracer(TRACER_NAME)
        self._ids = QueryIds()
        self._queries: dict[str, _QueryTrace] = {}
        self._batch_ids = itertools.count(1)
        self._trace_ids: OrderedDict[str, str] = OrderedDict()

    def trace_id_of(self, query_id: str) -> str | None:
        """The trace id (32 hex digits) of a recently started query."""
        return self._trace_ids.get(query_id)

    def on_query_start(self, query_id: str, graph: Graph, now_s: float) -> None:
        offset_ns = time.time_ns() - int(now_s * 1e9)
        root = self.tracer.start_span(
            "primflow.query",
            context=otel_context.get_current(),
            kind=SpanKind.INTERNAL,
            start_time=int(now_s * 1e9) + offset_ns,
            attributes={
                "primflow.query_id": query_id,
                "primflow.scheme": "primflow",
                "primflow.num_nodes": len(graph),
            },
        )
        self._ids.start(query_id)
        self._queries[query_id] = _QueryTrace(
            root, trace.set_span_in_context(root), graph, offset_ns
        )
        self._trace_ids[query_id] = format(root.get_span_context().trace_id, "032x")
        while len(self._trace_ids) > MAX_NUM_REMEMBERED_TRACES:
            self._trace_ids.popitem(last=False)

    def on_batch_formed(self, engine: str, batch: Batch, now_s: float) -> None:
        members = [(self._ids.query_of(r.query_id), r) for r in batch.requests]
        traced = [
            (self._queries[q], r)
            for q, r in members
            if q in self._queries and r.node in self._queries[q].graph  # else no span
        ]
        if not traced:
            return
        batch_id = next(self._batch_ids)
        query, _ = traced[0]
        batch_span = self.tracer.start_span(
            "primflow.batch",
            context=otel_context.Context(),  # a root: it may serve several queries
            start_time=query.ns(now_s),
            attributes={
                "primflow.engine": engine,
                "primflow.instance": batch.instance,
                "primflow.batch.id": batch_id,
                "primflow.batch.num_requests": len(batch.requests),
                "primflow.batch.num_items": batch.num_items,
                "primflow.batch.num_tokens": batch.num_tokens,
                "primflow.batch.query_ids": sorted({q or "?" for q, _ in members}),
            },
        )
        shared = _BatchSpan(batch_span, num_open=len(traced))
        link = Link(batch_span.get_span_context())
        span: Span = batch_span
        for query, request in traced:
            node = query.graph.node(request.node)
            provenance = node.provenance
            attributes: dict[str, str | int | float] = {
                "primflow.node": node.name,
                "primflow.op": str(node.op),
                "primflow.engine": engine,
                "primflow.instance": batch.instance,
                "primflow.batch.id": batch_id,
                "primflow.batch.size": len(batch.requests),
                "primflow.num_items": request.num_items,
                "primflow.num_prompt_tokens": request.num_tokens,
                "primflow.pass": provenance.pass_name or "lowering",
                "primflow.source": node.source,
                "primflow.share": str(provenance.share),
                "primflow.origin": node.origin or "",
            }
            if provenance.stage is not None:
                attributes["primflow.stage"] = f"{provenance.stage.chain}#{provenance.stage.index}"
            ready_s = request.arrival_s if request.arrival_s is not None else now_s
            module = query.modules.get(node.origin or node.name)
            span = self.tracer.start_span(
                f"primflow.primitive {node.op}",
                context=query.context if module is None else trace.set_span_in_context(module),
                start_time=query.ns(ready_s),
                links=[link],
                attributes=attributes,
            )
            span.add_event("dispatched", timestamp=query.ns(now_s))
            batch_span.add_link(span.get_span_context())
            query.primitives[node.name] = span
            query.batches[node.name] = shared
        # The rest of this event-loop callback, the engine's submit included, runs in
        # the span's context (the callback's context copy is dropped afterwards).
        otel_context.attach(trace.set_span_in_context(span if len(traced) == 1 else batch_span))

    def on_graph_grown(self, query_id: str, graph: Graph, now_s: float) -> None:
        query = self._queries.get(query_id)
        if query is not None:
            query.graph = graph

    def on_node_done(
        self, query_id: str, node: str, status: NodeStatus, timing: NodeTiming
    ) -> None:
        query = self._queries.get(query_id)
        if query is None:
            return
        query.timings[node] = timing
        shared = query.batches.get(node)
        if shared is not None and timing.end_s is not None:
            shared.end_s = max(shared.end_s, timing.end_s)
            shared.num_open -= 1
            if shared.num_open == 0:
                shared.span.end(end_time=query.ns(shared.end_s))
        if status in (NodeStatus.FAILED, NodeStatus.CANCELLED) and node in query.primitives:
            query.primitives[node].set_status(Status(StatusCode.ERROR, str(status)))

    def on_module_start(self, query_id: str, scheme: str, module: str, now_s: float) -> None:
        query = self._queries.get(query_id)
        if query is None:
            return
        query.root.set_attribute("primflow.scheme", scheme)
        query.modules[module] = self.tracer.start_span(
            f"primflow.module {module}",
            context=query.context,
            start_time=query.ns(now_s),
            attributes={"primflow.module": module, "primflow.scheme": scheme},
        )

    def on_module_done(self, query_id: str, module: str, now_s: float) -> None:
        query = self._queries.get(query_id)
        span = query.modules.pop(module, None) if query is not None else None
        if query is not None and span is not None:
            span.end(end_time=query.ns(now_s))

    def on_query_done(
        self,
        query_id: str,
        result: QueryResult | None,
        error: BaseException | None,
        now_s: float,
    ) -> None:
        self._ids.end(query_id)
        query = self._queries.pop(query_id, None)
        if query is None:
            return
        # A query run in parts (a baseline's loop rounds) ends with its last part's result.
        timings = {**query.timings, **(result.timings if result is not None else {})}
        service = service_times(query.graph, timings)
        total: TokenUsage | None = None  # None: no engine counted tokens
        for name, span in query.primitives.items():
            timing = timings.get(name)
            end_s = timing.end_s if timing is not None and timing.end_s is not None else now_s
            if timing is not None:
                span.set_attribute("primflow.queue_wait_s", round(timing.queue_wait_s, 6))
                span.set_attribute("primflow.exec_s", round(timing.exec_s, 6))
                span.set_attribute("primflow.service_s", round(service.get(name, 0.0), 6))
                if timing.usage is not None:
                    set_usage(span, timing.usage, GEN_AI_INPUT_TOKENS, GEN_AI_OUTPUT_TOKENS)
                    total = timing.usage if total is None else total + timing.usage
            span.end(end_time=query.ns(end_s))
        for shared in query.batches.values():  # batches whose other members never ended
            if shared.num_open > 0 and shared.span.is_recording():
                shared.num_open = 0
                shared.span.end(end_time=query.ns(max(shared.end_s, now_s)))
        root = query.root
        num_primitives = sum(1 for n in query.graph if n.op not in INLINE_OPS)
        root.set_attribute("primflow.num_primitives", num_primitives)
        if total is not None:
            set_usage(root, total, "primflow.num_input_tokens", "primflow.num_output_tokens")
        if result is not None:
            root.set_attribute("primflow.latency_s", round(result.latency_s, 6))
        if error is not None:
            root.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        root.end(end_time=query.ns(now_s))


def set_usage(span: Span, usage: TokenUsage, input_key: str, output_key: str) -> None:
    """Put ``usage``'s input and output token counts on ``span`` under these keys."""
    span.set_attribute(input_key, usage.num_input_tokens)
    span.set_attribute(output_key, usage.num_output_tokens)
