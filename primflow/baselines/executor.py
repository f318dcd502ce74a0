"""Module-level execution of an unoptimized p-graph: how framework chains run.

This is what the baselines share. A *module* is one template component (the nodes
with the same ``origin``); it is a black box: its primitives run one at a time, each as
ONE engine call with all its inputs (no stage decomposition, no prefill split, no
decode pipelining), submitted straight to the engine (no engine scheduler, so no
batching across queries or across primitives). Two orders:

- ``sequential``: every primitive in template order, one after another (a LlamaIndex
  module chain).
- ``parallel``: modules whose data inputs are ready run concurrently (what an
  ``asyncio.gather`` / LangGraph user writes); modules wait for the modules they read
  from, never for ones they are merely listed after.

Invariants: the same engines, prompts and values as primflow (so the same passages are
retrieved); every engine the query touched gets ``release`` on success and ``abort``
on failure; an engine failure ends the query with ``QueryFailed`` naming the node.
Hooks that watch baselines (``Hook.sees_baselines``, e.g. tracing) see each query,
module and engine call (``baselines/reports.py``); a query run in parts (a loop's
rounds) is one query to them, from its first part's start to its last part's end.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from primflow.baselines.reports import RunReports, module_of
from primflow.engines.base import USAGE, Engine, Outputs, TokenUsage
from primflow.graph import ops
from primflow.graph.ir import EdgeKind, Graph, Node, Op
from primflow.runtime.errors import QueryFailed
from primflow.runtime.hooks import Hook
from primflow.runtime.inline_ops import input_value, is_skipped, run_inline
from primflow.runtime.query_state import SKIPPED, NodeStatus, NodeTiming, QueryResult
from primflow.runtime.requests import build_request

OnNodeDone = Callable[[Node, NodeTiming], None]


@dataclass
class _Run:
    graph: Graph
    inputs: Mapping[str, Any]
    query_id: str
    on_text: Mapping[str, Callable[[str], None]]  # decode node -> its text callback
    on_node_done: OnNodeDone | None
    reports: RunReports
    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, NodeTiming] = field(default_factory=dict)
    engines_seen: set[str] = field(default_factory=set)
    decisions: dict[str, str] = field(default_factory=dict)  # constrained choices made
    decision_scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


class ModuleExecutor:
    """Runs p-graphs on engines module by module (see the module docstring)."""

    def __init__(
        self, engines: Mapping[str, Engine], *, is_parallel: bool, hooks: Sequence[Hook] = ()
    ) -> None:
        self.engines = dict(engines)
        self.is_parallel = is_parallel
        self.hooks = tuple(hooks)
        self._engines_seen: dict[str, set[str]] = {}  # query -> engines of its parts so far
        self._started_s: dict[str, float] = {}  # query -> when its first part started

    @property
    def scheme(self) -> str:
        return "parallel" if self.is_parallel else "sequential"

    async def run(
        self,
        graph: Graph,
        inputs: Mapping[str, Any],
        *,
        query_id: str,
        on_text: Mapping[str, Callable[[str], None]] | None = None,
        on_node_done: OnNodeDone | None = None,
        is_last_part: bool = True,
        whole_graph: Graph | None = None,
    ) -> QueryResult:
        """Run ``graph``; ``is_last_part=False`` keeps the query's engine state (a loop's
        next round runs under the same id), which the last part releases. A part of a
        growing query names ``whole_graph``, the query's graph so far, for the hooks."""
        reports = RunReports(self.hooks, self.scheme, query_id, graph)
        run = _Run(graph, inputs, query_id, on_text or {}, on_node_done, reports)
        started_s = time.perf_counter()
        whole = whole_graph if whole_graph is not None else graph
        if query_id not in self._started_s:  # its first part
            self._started_s[query_id] = started_s
            reports.query_start(whole, started_s)
        else:
            reports.graph_grown(whole, started_s)
        query_started_s = self._started_s[query_id]
        try:
            if self.is_parallel:
                await self._run_modules_concurrently(run)
            else:
                for name in graph.topo_order():
                    await self._run_node(run, graph.node(name))
        except BaseException as error:
            for engine in sorted(run.engines_seen | self._engines_seen.pop(query_id, set())):
                self.engines[engine].abort(query_id)
            del self._started_s[query_id]
            reports.query_done(None, error, time.perf_counter())
            raise
        self._engines_seen.setdefault(query_id, set()).update(run.engines_seen)
        ended_s = time.perf_counter()
        result = QueryResult(
            query_id,
            run.outputs,
            ended_s - started_s,
            run.timings,
            run.decisions,
            run.decision_scores,
        )
        if is_last_part:
            for engine in sorted(self._engines_seen.pop(query_id)):
                self.engines[engine].release(query_id)
            del self._started_s[query_id]
            whole_result = QueryResult(
                query_id,
                run.outputs,
                ended_s - query_started_s,
                run.timings,
                run.decisions,
                run.decision_scores,
            )
            whole_result.graph = whole_graph
            reports.query_done(whole_result, None, ended_s)
        return result

    def dependency_graph(self, graph: Graph) -> Graph:
        """``graph`` with the edges this executor really waits on, for the critical path:
        sequential waits on every earlier primitive; parallel on the data edges, the
        previous primitive of the same module, and every module the module reads from."""
        if not self.is_parallel:
            honored = graph.copy()
            order = graph.topo_order()
            for name, successor in itertools.pairwise(order):
                honored.order(name, successor)
            return honored
        honored = Graph(graph.nodes, [e for e in graph.edges if e.kind is EdgeKind.DATA])
        modules = modules_in_order(graph)
        for nodes in modules.values():
            for node, successor_node in itertools.pairwise(nodes):
                honored.order(node.name, successor_node.name)
        for module, upstream in module_dependencies(graph).items():
            for dependency in upstream:
                honored.order(modules[dependency][-1].name, modules[module][0].name)
        return honored

    # -- module order -------------------------------------------------------------
    async def _run_modules_concurrently(self, run: _Run) -> None:
        modules = modules_in_order(run.graph)
        done = {module: asyncio.Event() for module in modules}
        upstream = module_dependencies(run.graph)

        async def run_module(module: str) -> None:
            for dependency in upstream[module]:
                await done[dependency].wait()
            for node in modules[module]:
                await self._run_node(run, node)
            done[module].set()

        tasks = [asyncio.ensure_future(run_module(m)) for m in modules]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    # -- one primitive ------------------------------------------------------------
    async def _run_node(self, run: _Run, node: Node) -> None:
        now_s = time.perf_counter()
        timing = run.timings[node.name] = NodeTiming(ready_s=now_s, start_s=now_s)
        values, skipped = _gather(run, node)
        if skipped:  # never ran: no start, as the runtime reports an untaken branch
            timing.start_s = None
            outputs: Outputs = {p.name: SKIPPED for p in node.outputs}
        elif node.op is Op.INPUT:
            outputs = {ops.VALUE: run.inputs[node.params.get("key", node.name)]}
        elif node.op is Op.OUTPUT:
            run.outputs[node.params.get("key", node.name)] = values.get(ops.VALUE)
            outputs = {}
        elif node.op in (Op.CONDITION, Op.AGGREGATE, Op.INLINE_FUNCTION):
            outputs = run_inline(node, values)
        else:
            outputs = await self._call_engine(run, node, values, timing)
        for port in node.outputs:
            run.values[(node.name, port.name)] = outputs.get(port.name)
        if node.params.get("choices") and isinstance(outputs.get(ops.TEXT), str):
            run.decisions[node.name] = outputs[ops.TEXT].strip()
            if outputs.get(ops.CHOICE_SCORES):
                run.decision_scores[node.name] = dict(outputs[ops.CHOICE_SCORES])
        if isinstance(usage := outputs.get(USAGE), TokenUsage):
            timing.usage = usage
        timing.end_s = time.perf_counter()
        run.reports.node_done(node, NodeStatus.SKIPPED if skipped else NodeStatus.DONE, timing)
        if run.on_node_done is not None:
            run.on_node_done(node, timing)

    async def _call_engine(
        self, run: _Run, node: Node, values: dict[str, Any], timing: NodeTiming
    ) -> Outputs:
        assert node.engine is not None
        engine = self.engines[node.engine]
        on_text = run.on_text.get(node.name)
        request = build_request(node, values, run.query_id, on_text=on_text)
        request.arrival_s = timing.ready_s
        run.engines_seen.add(node.engine)
        timing.engine = node.engine
        timing.batch_size = 1
        run.reports.engine_call(node, request, timing.ready_s)
        [future] = engine.submit([request])
        try:
            return await future
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            timing.end_s = time.perf_counter()
            run.reports.node_done(node, NodeStatus.FAILED, timing)
            raise QueryFailed(run.query_id, node.name, node.engine, str(exc)) from exc


def _gather(run: _Run, node: Node) -> tuple[dict[str, Any], bool]:
    values: dict[str, Any] = {}
    num_skipped = 0
    in_edges = [e for e in run.graph.in_edges(node.name) if e.kind is EdgeKind.DATA]
    for edge in in_edges:
        value = run.values.get((edge.src, edge.src_port))
        port = node.input(edge.dst_port)
        value = input_value(value, is_optional=port.is_optional, select=edge.select)
        num_skipped += value is SKIPPED
        values[edge.dst_port] = value
    if node.op is Op.OUTPUT and num_skipped:
        return {ops.VALUE: None}, False
    return values, is_skipped(node.op, num_skipped, len(in_edges))


def modules_in_order(graph: Graph) -> dict[str, list[Node]]:
    """Nodes grouped by the component they came from, modules and nodes in topo order."""
    modules: dict[str, list[Node]] = {}
    for name in graph.topo_order():
        node = graph.node(name)
        modules.setdefault(module_of(node), []).append(node)
    return modules


def module_dependencies(graph: Graph) -> dict[str, set[str]]:
    """For each module, the modules it reads data from (ORDER edges are ignored)."""
    upstream: dict[str, set[str]] = {module_of(n): set() for n in graph}
    for edge in graph.edges:
        if edge.kind is not EdgeKind.DATA:
            continue
        src = module_of(graph.node(edge.src))
        dst = module_of(graph.node(edge.dst))
        if src != dst:
            upstream[dst].add(src)
    return upstream
