"""A query with a loop on a baseline scheme: the rounds run one graph after another.

This is how a LangGraph or LlamaIndex Workflows user runs such a flow: each step's
graph runs to its end (module by module, sequential or parallel), the decision is read
from its results, the next step is built and run. Nothing is optimized and no round
starts before the one before it has finished. Invariants:

- Every round runs under the query's id; only the last one releases the engines'
  state of the query (its per-query index lives across rounds). Values the next rounds
  read are *tapped* (extra OUTPUT nodes) and fed to them as
  INPUT nodes, so every round is a complete graph for the executor.
- The result covers the whole grown graph: every round's timings and outputs, the
  wall time from the first round's start to the last round's end, the decisions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from primflow.api.dynamic import LoopGrowth
from primflow.baselines.executor import ModuleExecutor, OnNodeDone
from primflow.graph import ops
from primflow.graph.ir import Edge, Graph, Node, Op, Port, Provenance
from primflow.runtime.growth import GraphDelta
from primflow.runtime.query_state import QueryResult

TAP_KEY = "@tap"
BOUNDARY_INPUT = "@in"

PortKey = tuple[str, str]


async def run_rounds(
    executor: ModuleExecutor,
    growth: LoopGrowth,
    pgraph: Graph,
    inputs: Mapping[str, Any],
    query_id: str,
    on_node_done: OnNodeDone | None = None,
) -> tuple[QueryResult, Graph]:
    """Run ``pgraph`` and the rounds its loop appends; (result, honored dependencies)."""
    started_s = time.perf_counter()
    part = growth.attach(pgraph, None)
    values: dict[PortKey, Any] = {}
    outputs: dict[str, Any] = {}
    result = QueryResult(query_id, outputs, 0.0)
    delta = GraphDelta(part.nodes, part.edges, dict(inputs))
    for _ in range(growth.loop.max_rounds + 2):  # the first graph, each step, the end
        graph, graph_inputs = _runnable(delta, values)
        taps = _add_taps(graph, growth)
        ran = await executor.run(
            graph,
            graph_inputs,
            query_id=query_id,
            on_node_done=on_node_done,
            is_last_part=growth.decision is None,
            whole_graph=growth.graph,
        )
        for key, port_key in taps.items():
            values[port_key] = ran.outputs.pop(key)
        outputs.update(ran.outputs)
        result.decisions.update(ran.decisions)
        result.decision_scores.update(ran.decision_scores)
        result.timings.update(
            {n: t for n, t in ran.timings.items() if not n.startswith(("@", TAP_KEY))}
        )
        decision = growth.decision
        if decision is None:
            break
        choice = values[(decision.node, decision.port)]
        grown = growth.grow(decision.node, {ops.TEXT: choice})
        assert grown is not None
        delta = grown
        result.rounds.append(grown.label)
    whole = growth.graph
    assert whole is not None
    result.latency_s = time.perf_counter() - started_s
    result.graph = whole
    return result, executor.dependency_graph(whole)


def _runnable(delta: GraphDelta, values: Mapping[PortKey, Any]) -> tuple[Graph, dict[str, Any]]:
    """The delta as a complete graph: what it reads of earlier rounds becomes INPUTs."""
    graph = Graph(delta.nodes)
    graph_inputs = dict(delta.inputs)
    for edge in delta.edges:
        if edge.src in graph:
            graph.add_edge(edge)
            continue
        key = f"{BOUNDARY_INPUT}:{edge.src}.{edge.src_port}"
        name = f"{BOUNDARY_INPUT}.{edge.src}.{edge.src_port}"
        if name not in graph:
            port = graph.node(edge.dst).input(edge.dst_port)
            value_port = Port(ops.VALUE, port.type, port.num_items)
            node = Node(name, Op.INPUT, outputs=(value_port,), params={"key": key})
            graph.add_node(node.replace(provenance=Provenance(name)))
            graph_inputs[key] = values[(edge.src, edge.src_port)]
        graph.add_edge(Edge(name, edge.dst, ops.VALUE, edge.dst_port, edge.kind, edge.select))
    return graph, graph_inputs


def _add_taps(graph: Graph, growth: LoopGrowth) -> dict[str, PortKey]:
    """OUTPUT nodes for the values later rounds read (state, outer channels, decision)."""
    sources = [*growth.state.values(), *growth.outer.values()]
    if growth.decision is not None:
        sources.append(growth.decision)
    taps: dict[str, PortKey] = {}
    for source in sources:
        if source.node not in graph:
            continue
        key = f"{TAP_KEY}:{source.node}.{source.port}"
        if key in taps:
            continue
        name = f"{TAP_KEY}.{len(taps)}"
        port = source.port_for(ops.VALUE, is_optional=True)
        node = Node(name, Op.OUTPUT, inputs=(port,), params={"key": key})
        graph.add_node(node.replace(provenance=Provenance(name)))
        graph.connect(source.node, source.port, name, ops.VALUE)
        taps[key] = (source.node, source.port)
    return taps
