"""Graphs that grow while their query runs, and branch guards (the runtime's side of
dynamic graphs).

A query may carry a :class:`Growth`: when one of its ``triggers`` (a node, usually a
constrained LLM decision) finishes, the graph scheduler hands it the node's outputs and
appends the :class:`GraphDelta` it returns to the running query: new nodes, their edges
(which may read nodes that already ran) and the values of new INPUT nodes. Nodes that
are running keep running; new nodes whose inputs are already there are dispatched at
once. Invariants:

- A delta only adds: it never removes or rewrites a node that is in the graph, so what
  already ran stays valid. Its edges may start at any node of the graph so far.
- A growing query keeps every value until it ends, because a later round may read any
  of them (a static query releases each value after its last reader).
- Triggers may be added by the deltas themselves (the next round's decision node): the
  growth object owns the set, the scheduler only reads it.

Branch guards (:func:`branch_guards`): a node whose every consumer lies on one branch of
a CONDITION (e.g. the partial prefill of a prompt only that branch uses) is work that is
useless when the branch is not taken. The scheduler holds such a node until the
condition has decided, then drops it (SKIPPED, never dispatched) or dispatches it, so
no speculative work is ever queued for an untaken branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from primflow.graph.ir import INLINE_OPS, Edge, EdgeKind, Graph, Node, Op

BranchPort = tuple[str, str]  # (CONDITION node, output port)


@dataclass
class GraphDelta:
    """What one growth step appends: nodes, edges, and the values of new INPUT nodes
    (by ``key``). ``label`` names the step in reports (e.g. ``hops round 2``)."""

    nodes: list[Node]
    edges: list[Edge]
    inputs: dict[str, Any] = field(default_factory=dict)
    label: str = ""


class Growth(Protocol):
    """Grows one query's graph; the graph scheduler calls :meth:`grow` when a trigger ends."""

    @property
    def triggers(self) -> frozenset[str]: ...

    def grow(self, trigger: str, outputs: Mapping[str, Any]) -> GraphDelta | None:
        """The delta to append after ``trigger`` finished with ``outputs``, or None."""


def extend_graph(graph: Graph, delta: GraphDelta) -> Graph:
    """A copy of ``graph`` with ``delta`` appended; raises GraphError on a bad delta."""
    grown = graph.copy()
    for node in delta.nodes:
        grown.add_node(node)
    for edge in delta.edges:
        if edge.dst not in {n.name for n in delta.nodes}:
            raise ValueError(f"delta edge {edge} ends at {edge.dst!r}, a node it did not add")
        grown.add_edge(edge)
    return grown


def branch_guards(graph: Graph) -> dict[str, list[BranchPort]]:
    """Engine nodes that only an untaken branch would need, with the branches they serve.

    For each CONDITION port, the nodes skipped when it is not taken are the ones reading
    it (or such a node) through a required input; an AGGREGATE only when all its parts
    are. A node outside that set whose every consumer is in it, or is such a node, is
    guarded by the port.
    """
    order = graph.topo_order()
    guards: dict[str, list[BranchPort]] = {}
    for condition in graph.nodes_with_op(Op.CONDITION):
        for port in condition.outputs:
            skipped = _skipped_by(graph, order, condition.name, port.name)
            for name in _useless_without(graph, order, skipped):
                guards.setdefault(name, []).append((condition.name, port.name))
    return guards


def _skipped_by(graph: Graph, order: list[str], condition: str, port: str) -> set[str]:
    skipped: set[str] = set()
    for name in order:
        node = graph.node(name)
        if node.op in (Op.INPUT, Op.OUTPUT) or name == condition:
            continue
        dead_inputs = [
            e
            for e in graph.in_edges(name)
            if e.kind is EdgeKind.DATA
            and not node.input(e.dst_port).is_optional
            and ((e.src == condition and e.src_port == port) or e.src in skipped)
        ]
        num_data = sum(1 for e in graph.in_edges(name) if e.kind is EdgeKind.DATA)
        if node.op is Op.AGGREGATE:
            if dead_inputs and len(dead_inputs) == num_data:
                skipped.add(name)
        elif dead_inputs:
            skipped.add(name)
    return skipped


def _useless_without(graph: Graph, order: list[str], skipped: set[str]) -> list[str]:
    useless: set[str] = set()
    for name in reversed(order):
        node = graph.node(name)
        if name in skipped or node.op in (Op.INPUT, Op.OUTPUT, Op.CONDITION):
            continue
        children = graph.children(name)
        if children and all(c in skipped or c in useless for c in children):
            useless.add(name)
    # Inline ops cost nothing: only engine work is held.
    return [n for n in order if n in useless and graph.node(n).op not in INLINE_OPS]
