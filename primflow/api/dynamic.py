"""Dynamic lowering: a query whose graph grows round by round (a ``Loop``) while it runs.

Lowering a template with a :class:`~primflow.api.components.Loop` gives the graph up to
the loop's first decision (round 1's check, or round ``min_rounds + 1``'s after the
steps that run unchecked) and a :class:`LoopGrowth`, which lowers the
rest when each decision is known: the chosen step and the next check, or, once the
loop ends, the components after it and the template's outputs. It is the runtime's
:class:`~primflow.runtime.growth.Growth` for the query. Invariants:

- Each part is lowered into a round graph of its own, where the values it reads from
  the graph so far are *stand-ins*: INPUT nodes named like their real producers (params
  ``key`` :data:`BOUNDARY_KEY`). The passes run on that round graph only (the appended
  subgraph and its boundary), and the stand-ins are dropped from the delta, so its
  edges start at the real producers.
- What a later part reads (the state, the decision, channels the components after the
  loop read) is pinned by *anchors*: OUTPUT nodes that the passes rewire like any other
  reader. After optimization an anchor's in-edge names the e-graph node that produces
  the value (a stage join, a partial decode, ...); the anchors are then removed.
- A round graph is optimized under canonical names (``<loop>.r#.`` for the round,
  ``@boundary.<i>`` for stand-ins), so rounds of the same shape share one cache entry
  (per template and round shape); the names are mapped back afterwards.
- Node names of round r start with ``<loop>.r<r>.``; the components after the loop keep
  their own names. A decision that is neither a step nor a stop choice fails the query
  with an error that names the loop and the allowed choices.

Lowering a sub-template under a round's prefix and the canonical names live in
:mod:`primflow.api.round_graph`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from primflow.api.expansion import (
    ExpansionState,
    LoweringContext,
    LoweringError,
    Source,
    add_output,
)
from primflow.api.round_graph import (
    BOUNDARY_KEY,
    Canonical,
    LoopSpec,
    decision_of,
    has_output,
    lower_sub,
    rename_graph,
    template_of,
    without,
)
from primflow.api.template import BUILTIN_INPUTS, Template
from primflow.graph import ops
from primflow.graph.ir import Graph, Node, Op, Port, Provenance
from primflow.runtime.growth import GraphDelta, extend_graph

__all__ = ["ANCHOR_KEY", "BOUNDARY_KEY", "LoopGrowth", "LoopSpec", "RoundRecord"]

ANCHOR_KEY = "@anchor"


class OptimizeReportLike(Protocol):
    @property
    def total_s(self) -> float: ...
    @property
    def is_cache_hit(self) -> bool: ...


# (round graph, cache id) -> (optimized graph, report); None runs no passes.
RoundOptimizer = Callable[[Graph, str], tuple[Graph, OptimizeReportLike]]


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One appended part: its label, the decision before it, its size and what
    optimizing it (incrementally) cost."""

    label: str
    decision: str
    num_nodes: int
    lower_s: float
    optimize_s: float
    is_cache_hit: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "decision": self.decision,
            "num_nodes": self.num_nodes,
            "lower_s": round(self.lower_s, 6),
            "optimize_s": round(self.optimize_s, 6),
            "optimize_cache_hit": self.is_cache_hit,
        }


@dataclass
class LoopGrowth:
    """Grows one query's graph through its loop (see the module docstring)."""

    loop: LoopSpec
    template: Template
    query: Any
    state: dict[str, Source]
    decision: Source | None
    outer: dict[str, Source] = field(default_factory=dict)
    deferred: list[Any] = field(default_factory=list)  # components after the loop
    deferred_outputs: dict[str, str] = field(default_factory=dict)  # key -> channel
    num_rounds: int = 0  # steps lowered so far
    decisions: list[str] = field(default_factory=list)
    records: list[RoundRecord] = field(default_factory=list)
    template_id: str = ""
    optimize: RoundOptimizer | None = None
    on_round: list[Callable[[Graph], None]] = field(default_factory=list)
    graph: Graph | None = None  # the query's graph so far (set by attach, grown by grow)
    _anchors: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (kind, name)

    # -- the Growth protocol ------------------------------------------------------------
    @property
    def triggers(self) -> frozenset[str]:
        return frozenset() if self.decision is None else frozenset({self.decision.node})

    def grow(self, trigger: str, outputs: Mapping[str, Any]) -> GraphDelta | None:
        if self.decision is None or trigger != self.decision.node:
            return None
        choice = str(outputs.get(ops.TEXT, "")).strip()
        self.decisions.append(choice)
        started_s = time.perf_counter()
        builder = _RoundBuilder(self)
        label = builder.lower_after(choice)
        lower_s = time.perf_counter() - started_s
        delta, report = builder.finish(self.optimize, f"{self.template_id}/{self.loop.name}")
        optimize_s = 0.0 if report is None else report.total_s
        is_hit = report is not None and report.is_cache_hit
        record = RoundRecord(label, choice, len(delta.nodes), lower_s, optimize_s, is_hit)
        self.records.append(record)
        delta.label = label
        if self.graph is not None:
            self.graph = extend_graph(self.graph, delta)
            for callback in self.on_round:
                callback(self.graph)
        return delta

    # -- before the run -----------------------------------------------------------------
    def attach(
        self,
        graph: Graph,
        optimize: RoundOptimizer | None = None,
        template_id: str = "",
        *,
        keep_anchors: bool = False,
    ) -> Graph:
        """Resolve the anchors of the (optimized) first graph; return it without them.

        ``optimize`` runs on every later round graph (None: no passes, a p-graph)."""
        self.optimize = optimize
        self.template_id = template_id
        resolved = self._resolve(graph)
        if not keep_anchors:
            graph = without(graph, resolved)
        self.graph = graph
        return graph

    @property
    def is_finished(self) -> bool:
        return self.decision is None

    def unroll(self, decisions: Sequence[str]) -> Graph:
        """Grow the attached graph with ``decisions`` in order, then the first stop
        choice, without running it (goldens, ``primflow graph``, the tests)."""
        choices = iter(decisions)
        while self.decision is not None:
            self.grow(self.decision.node, {ops.TEXT: next(choices, self.loop.stop_on[0])})
        if self.graph is None:
            raise RuntimeError("attach the first graph before unrolling the loop")
        return self.graph

    def _resolve(self, graph: Graph) -> set[str]:
        """Point the state, the decision and the outer channels at their e-graph producers."""
        found: set[str] = set()
        for node, (kind, name) in list(self._anchors.items()):
            if node not in graph:
                continue
            [edge] = graph.in_edges(node)
            if edge.select is not None:
                raise LoweringError(f"anchor of {kind} {name!r} reads a slice ({edge})")
            found.add(node)
            table = {"state": self.state, "outer": self.outer}.get(kind)
            if table is not None:
                table[name] = dataclasses.replace(table[name], node=edge.src, port=edge.src_port)
            elif self.decision is not None:
                self.decision = dataclasses.replace(self.decision, node=edge.src)
            del self._anchors[node]
        return found

    def add_anchor(self, graph: Graph, kind: str, name: str, source: Source) -> None:
        """Pin ``source`` (a state value, the decision, an outer channel) with an anchor."""
        if graph.node(source.node).op is Op.INPUT:
            return  # INPUT nodes are never rewritten
        node = Node(
            f"{ANCHOR_KEY}.{len(self._anchors)}.{kind}.{name}",
            Op.OUTPUT,
            inputs=(source.port_for(ops.VALUE, is_optional=True),),
            params={"key": f"{ANCHOR_KEY}:{kind}:{name}"},
            origin=self.loop.name,
        )
        graph.add_node(node.replace(provenance=Provenance(node.name)))
        graph.connect(source.node, source.port, node.name, ops.VALUE)
        self._anchors[node.name] = (kind, name)


def start_loop(loop: LoopSpec, ctx: LoweringContext) -> None:
    """Lower the loop's first check into the query's graph and register its growth."""
    main = ctx.state
    if main.growth is not None:
        raise ctx.error("a template may hold one loop")
    state = {name: ctx.read(name) for name in loop.state_names}
    growth = LoopGrowth(loop, template_of(main), main.query, state, None)
    _lower_first_steps(growth, main)
    first = growth.num_rounds + 1
    if loop.max_rounds >= first:
        sub = lower_sub(loop.check, main, dict(state), f"{loop.name}.r{first}.", main.graph)
        growth.decision = decision_of(loop, sub)
    for name, source in state.items():
        growth.add_anchor(main.graph, "state", name, source)
    assert growth.decision is not None
    growth.add_anchor(main.graph, "decision", "decision", growth.decision)
    main.growth = growth


def _lower_first_steps(growth: LoopGrowth, main: ExpansionState) -> None:
    """Lower the loop's first ``min_rounds`` steps with the query: they run whatever a
    check would say, so no decision waits for them (round r's step is ``<loop>.r<r>.step.``)."""
    loop = growth.loop
    for step in loop.steps.values():
        for _ in range(loop.min_rounds):
            growth.num_rounds += 1
            prefix = f"{loop.name}.r{growth.num_rounds}.step."
            sub = lower_sub(step, main, dict(growth.state), prefix, main.graph)
            for key, channel in step.outputs.items():
                growth.state[key] = sub.channels[channel]


def finish_lowering(
    growth: LoopGrowth,
    main: ExpansionState,
    deferred: Sequence[Any],
    deferred_outputs: Mapping[str, str],
) -> None:
    """Record what is lowered after the loop and anchor the channels it reads."""
    growth.deferred = list(deferred)
    growth.deferred_outputs = dict(deferred_outputs)
    needed = {ch for comp in deferred for ch in comp.reads.values() if ch is not None}
    for template in (growth.loop.check, *growth.loop.steps.values()):
        needed |= set(template.inputs) & set(BUILTIN_INPUTS)
    needed |= set(deferred_outputs.values())
    for channel in sorted(needed & main.channels.keys()):
        growth.outer[channel] = main.channels[channel]
        growth.add_anchor(main.graph, "outer", channel, main.channels[channel])


class _RoundBuilder:
    """Builds one delta: a round graph with stand-ins and anchors, optimized apart."""

    def __init__(self, growth: LoopGrowth) -> None:
        self.growth = growth
        self.graph = Graph()
        self.standins: list[str] = []
        self.inputs: dict[str, Any] = {}
        self.main = ExpansionState(growth.template, growth.query, inputs=self.inputs)
        self.main.graph = self.graph
        self.prefixes: list[str] = []

    def bind(self, source: Source) -> Source:
        """``source`` as seen from the round graph: a stand-in for a node that ran."""
        if source.node in self.graph:
            node = self.graph.node(source.node)
            if node.params.get("key") != BOUNDARY_KEY or has_output(node, source.port):
                return source
            port = Port(source.port, source.type, source.num_items if source.type.is_list else None)
            self.graph.replace_node(node.replace(outputs=(*node.outputs, port)))
            return source
        port = Port(source.port, source.type, source.num_items if source.type.is_list else None)
        standin = Node(
            source.node,
            Op.INPUT,
            outputs=(port,),
            params={"key": BOUNDARY_KEY},
            provenance=Provenance(source.node),
        )
        self.graph.add_node(standin)
        self.standins.append(source.node)
        return source

    def lower_after(self, choice: str) -> str:
        growth, loop = self.growth, self.growth.loop
        outer = {k: self.bind(s) for k, s in growth.outer.items()}
        self.main.channels.update(outer)
        if choice in loop.stop_on:
            self._lower_final()
            return f"{loop.name} ended after {growth.num_rounds} steps ({choice})"
        if choice not in loop.steps:
            allowed = ", ".join(sorted({*loop.steps, *loop.stop_on}))
            raise LoweringError(f"loop {loop.name!r}: decision {choice!r} is not one of: {allowed}")
        growth.num_rounds += 1
        step_round = growth.num_rounds
        prefix = f"{loop.name}.r{step_round}."
        self.prefixes.append(prefix)
        bound = {name: self.bind(s) for name, s in growth.state.items()}
        sub = lower_sub(loop.steps[choice], self.main, dict(bound), prefix + "step.", self.graph)
        for key, channel in loop.steps[choice].outputs.items():
            growth.state[key] = sub.channels[channel]
        if growth.num_rounds < loop.max_rounds:
            bound = {name: self.bind(s) for name, s in growth.state.items()}
            check_prefix = f"{loop.name}.r{step_round + 1}."
            self.prefixes.append(check_prefix)
            sub = lower_sub(loop.check, self.main, bound, check_prefix, self.graph)
            growth.decision = decision_of(loop, sub)
            self._anchor_new()
        else:
            self._lower_final()
        return f"{loop.name} round {step_round}: {choice}"

    def _lower_final(self) -> None:
        growth = self.growth
        growth.decision = None
        for name, channel in growth.loop.writes.items():
            if channel is not None:
                self.main.channels[channel] = self.bind(growth.state[name])
        for component in growth.deferred:
            component.expand(LoweringContext(self.main, component))
        for key, channel in growth.deferred_outputs.items():
            add_output(self.main, key, self.main.channels[channel])

    def _anchor_new(self) -> None:
        growth = self.growth
        for name, source in growth.state.items():
            if source.node not in self.standins:
                growth.add_anchor(self.graph, "state", name, source)
        assert growth.decision is not None
        growth.add_anchor(self.graph, "decision", "decision", growth.decision)

    def finish(
        self, optimize: RoundOptimizer | None, cache_id: str
    ) -> tuple[GraphDelta, OptimizeReportLike | None]:
        graph, report = self.graph, None
        if optimize is not None:
            names = Canonical(self.prefixes, self.standins, self.growth.loop.name)
            optimized, report = optimize(rename_graph(graph, names.to_canonical), cache_id)
            graph = rename_graph(optimized, names.from_canonical)
        resolved = self.growth._resolve(graph)
        graph = without(graph, resolved)
        standins = set(self.standins)
        nodes = [n for n in graph if n.name not in standins]
        delta = GraphDelta(nodes, graph.edges, dict(self.inputs))
        return delta, report
