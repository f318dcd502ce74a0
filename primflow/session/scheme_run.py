"""One lowered question run on one scheme: what ``Session`` does once it knows the
app, the template and the query.

``primflow`` lowers, optimizes (cached per graph shape; a loop's later rounds
optimized on their own as they are appended) and runs the graph on the two-tier
runtime; a baseline (``sequential``, ``parallel``) runs the unoptimized p-graph module
by module on the same engines, a loop's rounds one after another
(``baselines/rounds.py``). Invariants: every run reports to its :class:`EventSink` (node
ends, the answer's text), the session hook forgets the query when its run ends however
it ends, and the :class:`Answer` covers the whole grown graph.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from primflow.api.config import Query
from primflow.api.dynamic import LoopGrowth
from primflow.api.lower import LoweredQuery, lower_query
from primflow.api.template import Template
from primflow.baselines import baseline_executor
from primflow.baselines.rounds import run_rounds
from primflow.graph.ir import Graph
from primflow.passes import Optimizer, OptimizeReport
from primflow.runtime import QueryResult, Runtime
from primflow.session.answer import Answer, build_answer
from primflow.session.events import EventSink, OnText
from primflow.session.query_hook import SessionHook, answer_decode_nodes
from primflow.session.stack import EngineStack


@dataclass
class SchemeRunner:
    """Runs questions on a session's stack, optimizer and runtime (see the module doc)."""

    stack: EngineStack
    optimizer: Optimizer
    runtime: Runtime
    hook: SessionHook
    passes_key: str  # the ablation's passes, part of the optimized-graph cache key

    async def answer(
        self,
        app_name: str,
        template: Template,
        query: Query,
        sink: EventSink,
        *,
        scheme: str,
        template_key: str,
        query_id: str,
        deadline_s: float | None,
        priority: int,
        is_text_streamed: bool,
    ) -> Answer:
        """Lower, optimize (primflow) and run one question, reporting to ``sink``."""
        started_s = time.perf_counter()
        lowered = lower_query(template, query)
        lower_s = time.perf_counter() - started_s
        growth = lowered.growth
        if scheme == "primflow":
            key = f"{template_key}/{self.passes_key}"
            graph, report = self.optimizer.optimize(lowered.graph, template_id=key)
            optimize_s, is_cache_hit = report.total_s, report.is_cache_hit
            if growth is not None:  # later rounds: optimized on their own, cached
                graph = growth.attach(graph, self._optimize_round, key)
        else:
            graph, optimize_s, is_cache_hit = lowered.graph, 0.0, False
        sink.begin(query_id, graph)
        if growth is not None:
            growth.on_round.append(partial(self._on_round, query_id, sink, is_text_streamed))
        streamed = answer_decode_nodes(graph) if is_text_streamed else frozenset()
        on_text = {node: sink.text_of(node) for node in sorted(streamed)}
        num_tokens: dict[str, int] = {}
        if scheme == "primflow":
            self.hook.watch(query_id, sink.node_done, num_tokens)
            try:
                result = await self.runtime.run(
                    graph,
                    lowered.inputs,
                    query_id=query_id,
                    deadline_s=deadline_s,
                    on_text=on_text,
                    priority=priority,
                    growth=growth,
                )
            finally:
                self.hook.forget(query_id)
            graph = honored = result.graph or graph
        else:
            result, graph, honored = await self._run_baseline(
                scheme, lowered, query_id, sink, on_text
            )
        answer = build_answer(
            app_name,
            scheme,
            query.question,
            result,
            graph,
            honored,
            lower_s,
            optimize_s,
            is_cache_hit,
        )
        answer.num_tokens = num_tokens
        answer.pgraph = lowered.graph
        if growth is not None:
            answer.rounds = list(growth.records)
        if scheme == "sequential":  # its primitives ran alone: it is its own reference
            answer.set_reference(answer)
        return answer

    async def _run_baseline(
        self,
        scheme: str,
        lowered: LoweredQuery,
        query_id: str,
        sink: EventSink,
        on_text: Mapping[str, OnText],
    ) -> tuple[QueryResult, Graph, Graph]:
        """(result, the graph that ran, the dependencies it honored)."""
        executor = baseline_executor(scheme, self.stack.engines, self.runtime.hooks)
        growth: LoopGrowth | None = lowered.growth

        def node_done(node: Any, timing: Any) -> None:
            sink.node_done(node.name, timing)

        if growth is not None:
            result, honored = await run_rounds(
                executor, growth, lowered.graph, lowered.inputs, query_id, node_done
            )
            return result, honored if result.graph is None else result.graph, honored
        honored = executor.dependency_graph(lowered.graph)
        result = await executor.run(
            lowered.graph,
            lowered.inputs,
            query_id=query_id,
            on_text=on_text,
            on_node_done=node_done,
        )
        return result, lowered.graph, honored

    def _optimize_round(self, graph: Graph, template_id: str) -> tuple[Graph, OptimizeReport]:
        """Optimize one appended round on its own (api/dynamic.py), cached by shape."""
        return self.optimizer.optimize(graph, template_id=template_id)

    def _on_round(
        self, query_id: str, sink: EventSink, is_text_streamed: bool, graph: Graph
    ) -> None:
        """A loop appended a round: count its primitives, stream its answer decode."""
        sink.set_graph(graph)
        if is_text_streamed:
            for node in answer_decode_nodes(graph):
                self.hook.stream(query_id, node, sink.text_of(node))
