"""The graph scheduler (upper tier): runs one query's e-graph, event by event.

``QueryRun`` owns one query. It never polls and starts no tasks: it reacts to three
events, each a plain method call on the event loop:

- ``start()``: INPUT nodes run, their children are unblocked;
- ``on_dispatched(request, ...)``: an engine worker handed the request to its engine
  (the node is RUNNING; chained LLM phases waiting on it are unblocked: relaxed edges, plan.py);
- ``on_result(request, outputs, error)``: the engine finished the request.

State: ``num_waiting[node]`` counts the in-edges not yet satisfied (an edge is
satisfied when its producer is DONE or SKIPPED, or, for a relaxed edge, dispatched);
``ready`` is the worklist of nodes whose count reached zero; values, status and
timings live in ``QueryState``.

Selection: a ready node is dispatched at once. Inline ops (INPUT, OUTPUT, CONDITION,
AGGREGATE) run right here; engine ops become an ``EngineRequest`` carrying the node's
depth, its current upward rank (``priority``) and the query's start time
(``query_start_s``) for the engine's batching policy.

Branches: an engine node that only one CONDITION branch needs (``plan.guards``) is
held until the condition decides, then dispatched or dropped (SKIPPED, never sent), so
an untaken branch never queues work. Each constrained decision (a decode with
``choices``) is recorded in the result's ``decisions``, with the scores it was decided
by (``decision_scores``) when the engine scored it.

Growth: with a ``growth``, a trigger node's outputs may append a ``GraphDelta`` to the
running query (``runtime/growth.py``); the plan is rebuilt for the grown graph, running
nodes go on, and new nodes whose inputs are there are dispatched at once.

Skipping: a node whose required input is ``SKIPPED`` is skipped (all its outputs are
``SKIPPED``); an optional input receives ``None``; an AGGREGATE is skipped only when
all its parts are; an OUTPUT of a skipped value yields ``None``. Ranks are recomputed
without the skipped nodes, so later requests carry the shorter remaining path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from primflow.engines.base import USAGE, EngineRequest, Outputs, TokenUsage
from primflow.graph import ops
from primflow.graph.ir import Graph, Op
from primflow.runtime.clock import Clock
from primflow.runtime.errors import QueryFailed
from primflow.runtime.growth import BranchPort, GraphDelta, Growth, extend_graph
from primflow.runtime.hooks import Hook
from primflow.runtime.inline_ops import input_value, is_skipped, run_inline
from primflow.runtime.plan import GraphPlan, NodePlan
from primflow.runtime.query_state import (
    MISSING,
    SKIPPED,
    NodeStatus,
    NodeTiming,
    QueryResult,
    QueryState,
)
from primflow.runtime.requests import build_request

Submit = Callable[[str, EngineRequest], None]
MakePlan = Callable[[Graph], GraphPlan]
OnText = Callable[[str], None]


class QueryRun:
    def __init__(
        self,
        query_id: str,
        graph: Graph,
        plan: GraphPlan,
        inputs: Mapping[str, Any],
        *,
        clock: Clock,
        submit: Submit,
        on_end: Callable[[QueryRun], None],
        hooks: Sequence[Hook] = (),
        deadline_at_s: float | None = None,
        engine_query_id: str | None = None,
        on_text: Mapping[str, OnText] | None = None,
        priority: int = 0,
        growth: Growth | None = None,
        make_plan: MakePlan | None = None,
    ) -> None:
        self.query_id = query_id
        self.priority = priority  # the client's, for every request of this query
        # The id engines see (requests, LLM call ids); differs when an id is reused.
        self.engine_query_id = engine_query_id or query_id
        self.graph = graph
        self.plan = plan
        self.inputs = dict(inputs)
        self.growth = growth
        self._make_plan = make_plan
        if growth is not None and make_plan is None:
            raise ValueError("a growing query needs make_plan to plan its grown graph")
        self.state = QueryState(
            query_id, plan.order, plan.num_readers, is_retaining=growth is not None
        )
        self.decisions: dict[str, str] = {}  # decode node -> its constrained choice
        self.decision_scores: dict[str, dict[str, dict[str, float]]] = {}
        self.rounds: list[str] = []  # labels of the deltas appended, in order
        self.engines_seen: set[str] = set()
        self.result: QueryResult | None = None
        self.error: BaseException | None = None
        self.deadline_at_s = deadline_at_s
        self._clock = clock
        self._submit = submit
        self._on_end = on_end
        self._hooks = hooks
        self._on_text = on_text or {}
        self._num_waiting = {name: p.num_deps for name, p in plan.nodes.items()}
        self._ready: deque[str] = deque()
        self._requests: dict[str, EngineRequest] = {}  # node -> request not yet finished
        self._ranks = plan.base_ranks
        self._is_rank_stale = False
        self._held: dict[str, list[str]] = {}  # CONDITION -> guarded nodes waiting on it
        self._untaken: set[BranchPort] = set()
        self.start_s = clock.now_s()

    @property
    def is_finished(self) -> bool:
        return self.result is not None or self.error is not None

    # -- events -------------------------------------------------------------------
    def start(self) -> None:
        for hook in self._hooks:
            hook.on_query_start(self.query_id, self.graph, self.start_s)
        self._ready.extend(n for n in self.plan.order if self._num_waiting[n] == 0)
        self._drain(self.start_s)

    def on_dispatched(self, request: EngineRequest, batch_size: int, engine: str) -> None:
        if self.is_finished or self._requests.get(request.node) is not request:
            return
        name = request.node
        now_s = self._clock.now_s()
        self.state.set_status(name, NodeStatus.RUNNING)
        timing = self.state.timings[name]
        timing.start_s = now_s
        timing.batch_size = batch_size
        timing.engine = engine
        self._unblock(name, is_dispatch=True)
        self._drain(now_s)

    def on_result(
        self, request: EngineRequest, outputs: Outputs | None, error: BaseException | None
    ) -> None:
        if self.is_finished or self._requests.get(request.node) is not request:
            return  # a stale result (of an earlier run under the same id): not ours
        del self._requests[request.node]
        node = self.plan.nodes[request.node].node
        if error is not None or outputs is None:
            reason = str(error) if error is not None else "no outputs"
            self.fail(QueryFailed(self.query_id, node.name, node.engine, reason), node.name)
            return
        missing = [
            p.name
            for p in node.outputs
            if p.name not in outputs and (node.name, p.name) in self.plan.num_readers
        ]
        if missing:
            got = ", ".join(outputs) or "nothing"
            reason = f"returned no {', '.join(missing)} output (got: {got})"
            self.fail(QueryFailed(self.query_id, node.name, node.engine, reason), node.name)
            return
        now_s = self._clock.now_s()
        self._complete(node.name, outputs, now_s)
        self._drain(now_s)

    def fail(self, error: BaseException, failed_node: str | None = None) -> None:
        """End the query with ``error``; unfinished nodes become CANCELLED."""
        if self.is_finished:
            return
        self.error = error
        now_s = self._clock.now_s()
        for name, status in self.state.status.items():
            if status.is_terminal:
                continue
            final = NodeStatus.FAILED if name == failed_node else NodeStatus.CANCELLED
            self.state.set_status(name, final)
            timing = self.state.timings.get(name)
            if timing is not None:
                timing.end_s = now_s
                self._node_done(name, final, timing)
        self._end(now_s)

    def unfinished_nodes(self) -> list[str]:
        return [n for n, s in self.state.status.items() if not s.is_terminal]

    def pending_requests(self) -> list[EngineRequest]:
        return list(self._requests.values())

    # -- the worklist -------------------------------------------------------------
    def _drain(self, now_s: float) -> None:
        while self._ready and not self.is_finished:
            self._dispatch(self._ready.popleft(), now_s)
        if not self.is_finished and self.state.num_unfinished == 0:
            self._finish(now_s)

    def _dispatch(self, name: str, now_s: float) -> None:
        plan = self.plan.nodes[name]
        guard = self._guard_of(name)
        if guard is not None:  # only a branch needs it: wait until the branch decides
            self._held.setdefault(guard, []).append(name)
            return
        values, is_skipped = self._gather_inputs(plan)
        timing = self.state.timings[name] = NodeTiming(ready_s=now_s)
        if is_skipped or self._is_on_untaken_branch(name):
            self._skip(plan, timing)
            return
        self.state.set_status(name, NodeStatus.READY)
        for hook in self._hooks:
            hook.on_node_ready(self.query_id, name, now_s)
        if plan.is_inline:
            self._run_inline(plan, values, timing)
        else:
            self._send(plan, values)

    def _guard_of(self, name: str) -> str | None:
        """A CONDITION that has not decided yet and decides whether ``name`` is needed."""
        for condition, _port in self.plan.guards.get(name, ()):
            if not self.state.status[condition].is_terminal:
                return condition
        return None

    def _is_on_untaken_branch(self, name: str) -> bool:
        return any(guard in self._untaken for guard in self.plan.guards.get(name, ()))

    def _gather_inputs(self, plan: NodePlan) -> tuple[dict[str, Any], bool]:
        """Read every input (releasing values); whether a required one was skipped."""
        values: dict[str, Any] = {}
        num_skipped = 0
        for binding in plan.inputs:
            value = self.state.take(binding.src, binding.src_port)
            if value is MISSING:  # a chained LLM phase: the engine links the state
                continue
            value = input_value(value, is_optional=binding.is_optional, select=binding.select)
            num_skipped += value is SKIPPED
            values[binding.port] = value
        op = plan.node.op
        if op is Op.OUTPUT and num_skipped:
            self.state.outputs[plan.node.params.get("key", plan.node.name)] = None
        return values, is_skipped(op, num_skipped, len(plan.inputs))

    def _run_inline(self, plan: NodePlan, values: dict[str, Any], timing: NodeTiming) -> None:
        node = plan.node
        timing.start_s = timing.ready_s
        try:
            if node.op is Op.INPUT:
                outputs = {ops.VALUE: self.inputs[node.params.get("key", node.name)]}
            elif node.op is Op.OUTPUT:
                self.state.outputs[node.params.get("key", node.name)] = values.get(ops.VALUE)
                outputs = {}
            else:
                outputs = run_inline(node, values)
        except Exception as exc:  # a bad value in an inline op fails only this query
            self.fail(QueryFailed(self.query_id, node.name, None, repr(exc)), node.name)
            return
        self._complete(node.name, outputs, timing.ready_s)

    def _send(self, plan: NodePlan, values: dict[str, Any]) -> None:
        node = plan.node
        assert node.engine is not None
        self._refresh_ranks()
        request = build_request(
            node,
            values,
            self.engine_query_id,
            depth=plan.depth,
            priority=self._ranks[node.name],
            query_start_s=self.start_s,
            query_priority=self.priority,
            deadline_s=self.deadline_at_s,
            on_text=self._on_text.get(node.name),
        )
        self._requests[node.name] = request
        self.engines_seen.add(node.engine)
        self._submit(node.engine, request)

    # -- completion ---------------------------------------------------------------
    def _complete(self, name: str, outputs: Mapping[str, Any], now_s: float) -> None:
        node = self.plan.nodes[name].node
        for port in node.outputs:
            self.state.put(name, port.name, outputs.get(port.name))
        self.state.set_status(name, NodeStatus.DONE)
        timing = self.state.timings[name]
        timing.end_s = now_s
        if isinstance(usage := outputs.get(USAGE), TokenUsage):
            timing.usage = usage
        if node.params.get("choices") and ops.TEXT in outputs:
            self.decisions[name] = str(outputs[ops.TEXT]).strip()
            if outputs.get(ops.CHOICE_SCORES):
                self.decision_scores[name] = dict(outputs[ops.CHOICE_SCORES])
        if node.op is Op.CONDITION:
            self._decided(name, outputs)
        self._node_done(name, NodeStatus.DONE, timing)
        self._unblock(name, is_dispatch=False)
        if self.growth is not None and name in self.growth.triggers:
            self._grow(name, outputs)

    def _decided(self, condition: str, outputs: Mapping[str, Any]) -> None:
        """A CONDITION decided: its held nodes go back to the worklist, where the ones
        of an untaken branch are dropped."""
        for port, value in outputs.items():
            if value is SKIPPED:
                self._untaken.add((condition, port))
        self._ready.extend(self._held.pop(condition, ()))

    def _grow(self, trigger: str, outputs: Mapping[str, Any]) -> None:
        assert self.growth is not None and self._make_plan is not None
        try:
            delta = self.growth.grow(trigger, outputs)
            if delta is None:
                return
            self._extend(delta)
        except Exception as exc:  # a bad round fails only this query
            reason = f"growing the graph failed: {type(exc).__name__}: {exc}"
            self.fail(QueryFailed(self.query_id, trigger, None, reason), None)

    def _extend(self, delta: GraphDelta) -> None:
        assert self._make_plan is not None
        graph = extend_graph(self.graph, delta)
        plan = self._make_plan(graph)
        new_nodes = [n.name for n in delta.nodes]
        self.graph, self.plan = graph, plan
        for hook in self._hooks:
            hook.on_graph_grown(self.query_id, graph, self._clock.now_s())
        self.inputs.update(delta.inputs)
        self.state.add_nodes(new_nodes)
        self.rounds.append(delta.label)
        added = set(new_nodes)
        for name in new_nodes:
            self._num_waiting[name] = plan.nodes[name].num_deps
        for name, node_plan in plan.nodes.items():
            if name in added:
                continue
            status = self.state.status[name]
            for child, is_relaxed in node_plan.children:
                if child in added and _is_satisfied(status, is_relaxed):
                    self._num_waiting[child] -= 1
        self._ready.extend(n for n in new_nodes if self._num_waiting[n] == 0)
        self._is_rank_stale = True

    def _skip(self, plan: NodePlan, timing: NodeTiming) -> None:
        name = plan.node.name
        for port in plan.node.outputs:
            self.state.put(name, port.name, SKIPPED)
        self.state.set_status(name, NodeStatus.SKIPPED)
        timing.end_s = timing.ready_s
        self._is_rank_stale = True
        self._node_done(name, NodeStatus.SKIPPED, timing)
        # A skipped producer never dispatches: its relaxed edges unblock now too.
        self._unblock(name, is_dispatch=False, include_relaxed=True)

    def _unblock(self, name: str, *, is_dispatch: bool, include_relaxed: bool = False) -> None:
        for child, is_relaxed in self.plan.nodes[name].children:
            if is_relaxed != is_dispatch and not include_relaxed:
                continue
            self._num_waiting[child] -= 1
            if self._num_waiting[child] == 0:
                self._ready.append(child)

    def _node_done(self, name: str, status: NodeStatus, timing: NodeTiming) -> None:
        for hook in self._hooks:
            hook.on_node_done(self.query_id, name, status, timing)

    def _finish(self, now_s: float) -> None:
        self.result = QueryResult(
            query_id=self.query_id,
            outputs=self.state.outputs,
            latency_s=now_s - self.start_s,
            timings=self.state.timings,
            decisions=self.decisions,
            decision_scores=self.decision_scores,
            graph=self.graph if self.rounds else None,
            rounds=self.rounds,
        )
        self._end(now_s)

    def _end(self, now_s: float) -> None:
        self.state.clear_values()
        self._ready.clear()
        for hook in self._hooks:
            hook.on_query_done(self.query_id, self.result, self.error, now_s)
        self._on_end(self)

    def _refresh_ranks(self) -> None:
        if self._is_rank_stale:
            skipped = self.state.nodes_with(NodeStatus.SKIPPED)
            self._ranks = self.plan.ranks(skipped)
            self._is_rank_stale = False


def _is_satisfied(status: NodeStatus, is_relaxed: bool) -> bool:
    """Whether an edge from a producer in ``status`` no longer blocks its consumer."""
    if status in (NodeStatus.DONE, NodeStatus.SKIPPED):
        return True
    return is_relaxed and status is NodeStatus.RUNNING
