"""The primitive-level dataflow graph: ops, typed ports, nodes, edges.

This module owns the intermediate representation that lowering produces, the passes
rewrite and the runtime executes. Invariants:

- The graph is plain data. It holds no run state (values, status, timings live in
  ``primflow.runtime``); two graphs built the same way compare equal.
- Edges connect an output port of one node to an input port of another. Nothing is
  wired by matching field names. An ``ORDER`` edge carries no data: lowering adds it
  to keep the template's order, and dependency pruning removes it.
- A data edge may carry a ``select`` slice: the consumer sees only ``items[start:stop]``
  of a list-valued output. Stage decomposition uses it to shard work.
- Node names are unique within a graph; insertion order is kept, so printing and
  golden tests are deterministic. Names are labels only: what a node was derived from
  (its p-graph node, the pass that made it, its share of the work, its stage) is its
  typed :class:`Provenance`, and no code derives meaning from a name's shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any


class Op(StrEnum):
    """The primitives a query is lowered into.

    Examples:
        >>> from primflow import Op
        >>> Op("vector_search") is Op.VECTOR_SEARCH, str(Op.LLM_DECODE)
        (True, 'llm_decode')
    """

    INPUT = "input"
    OUTPUT = "output"
    EMBED = "embed"
    VECTOR_INGEST = "vector_ingest"
    VECTOR_SEARCH = "vector_search"
    RERANK = "rerank"
    WEB_SEARCH = "web_search"
    LLM_PREFILL = "llm_prefill"
    LLM_PARTIAL_PREFILL = "llm_partial_prefill"
    LLM_FULL_PREFILL = "llm_full_prefill"
    LLM_DECODE = "llm_decode"
    LLM_PARTIAL_DECODE = "llm_partial_decode"
    CONDITION = "condition"
    AGGREGATE = "aggregate"


LLM_OPS = frozenset(
    {
        Op.LLM_PREFILL,
        Op.LLM_PARTIAL_PREFILL,
        Op.LLM_FULL_PREFILL,
        Op.LLM_DECODE,
        Op.LLM_PARTIAL_DECODE,
    }
)
PREFILL_OPS = frozenset({Op.LLM_PREFILL, Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL})
# Ops the graph scheduler runs itself, with no engine behind them.
INLINE_OPS = frozenset({Op.INPUT, Op.OUTPUT, Op.CONDITION, Op.AGGREGATE})


class PortType(StrEnum):
    """What flows along an edge. List types can be sliced by an edge's ``select``."""

    TEXT = "text"  # str
    TEXTS = "texts"  # list[str]
    CHUNKS = "chunks"  # list[Chunk]
    VECTORS = "vectors"  # numpy array, one row per item
    HITS = "hits"  # list[Hit], best first
    INDEX = "index"  # handle of a vector collection that holds the ingested items
    LLM_STATE = "llm_state"  # an LLM request's KV state, handed from phase to phase
    BOOL = "bool"
    ANY = "any"

    @property
    def is_list(self) -> bool:
        return self in _LIST_TYPES


_LIST_TYPES = frozenset({PortType.TEXTS, PortType.CHUNKS, PortType.VECTORS, PortType.HITS})


def is_assignable(src: PortType, dst: PortType) -> bool:
    """Whether a value of type ``src`` may feed a port of type ``dst``."""
    return src == dst or PortType.ANY in (src, dst)


class EdgeKind(StrEnum):
    DATA = "data"
    ORDER = "order"


@dataclass(frozen=True, slots=True)
class Port:
    """A typed input or output of a node.

    ``num_items`` is the known length of a list port. An optional input receives
    ``None`` when its producer was skipped by an untaken CONDITION branch.
    """

    name: str
    type: PortType
    num_items: int | None = None
    is_optional: bool = False


@dataclass(frozen=True, slots=True)
class Stage:
    """A node's place in the stage chain of one decomposed batch.

    ``chain`` names the batch node the stages replaced (unique in the graph it was
    decomposed in); stage ``index`` of ``num_stages`` handles the index-th slice of its
    items. The stages of one chain run on one engine one after another, which is what
    the runtime's stage-aware rank relies on.
    """

    chain: str
    index: int
    num_stages: int


@dataclass(frozen=True, slots=True)
class Provenance:
    """What an e-graph node was derived from.

    - ``source``: the p-graph node whose work this node does (all or part of); empty
      for a node built by hand with no provenance, which then stands for itself
      (:attr:`Node.source`).
    - ``pass_name``: the pass that created or last rewrote the node; None for a node
      as lowering (or a user) built it.
    - ``share``: the fraction of the source's work this node does, so the shares of
      the engine nodes of one source sum to 1: its items for stage slices, per-item
      replicas and partial decodes; for the two phases of a split prefill, half each
      of the prompt (their token split is known only at run time, when the bound
      refines it). An AGGREGATE a pass added carries the share of what it joins.
    - ``stage``: set on the stages of a decomposed batch (and the replicas of its
      downstream chain), None otherwise.
    """

    source: str = ""
    pass_name: str | None = None
    share: Fraction = Fraction(1)
    stage: Stage | None = None


@dataclass(frozen=True, slots=True)
class Node:
    """One primitive of a query.

    ``engine`` names the engine instance group that runs it (``None`` for inline ops).
    ``params`` holds op-specific configuration (prompt template, top_k, the LLM request
    key that ties prefill and decode phases together, aggregate mode, ...). It is
    treated as immutable: passes build new nodes with :meth:`replace`.
    ``origin`` names the template component the node was lowered from;
    ``provenance`` records the p-graph node, pass, share and stage it derives from.
    """

    name: str
    op: Op
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    engine: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    is_batchable: bool = False
    is_splittable: bool = False
    origin: str = ""
    provenance: Provenance = Provenance()

    @property
    def source(self) -> str:
        """The p-graph node this node derives from (itself when it has no provenance)."""
        return self.provenance.source or self.name

    def piece(
        self, pass_name: str, share: Fraction = Fraction(1), stage: Stage | None = None
    ) -> Provenance:
        """The provenance of a node a pass makes from this one: the same source, the
        pass's name, ``share`` of this node's share (pieces of pieces compose)."""
        return Provenance(self.source, pass_name, self.provenance.share * share, stage)

    def input(self, name: str) -> Port:
        return _find_port(self.inputs, name, self.name, "input")

    def output(self, name: str) -> Port:
        return _find_port(self.outputs, name, self.name, "output")

    def replace(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)

    @property
    def num_items(self) -> int:
        """Work items this primitive processes: the size of its largest list input."""
        sizes = [p.num_items for p in self.inputs if p.num_items is not None]
        return max(sizes, default=1)


def _find_port(ports: tuple[Port, ...], name: str, node: str, kind: str) -> Port:
    for port in ports:
        if port.name == name:
            return port
    known = ", ".join(p.name for p in ports) or "none"
    raise KeyError(f"node {node!r} has no {kind} port {name!r} (it has: {known})")


@dataclass(frozen=True, slots=True)
class Edge:
    """``src.src_port -> dst.dst_port``; ORDER edges have empty port names."""

    src: str
    dst: str
    src_port: str = ""
    dst_port: str = ""
    kind: EdgeKind = EdgeKind.DATA
    select: tuple[int, int] | None = None

    def __str__(self) -> str:
        if self.kind is EdgeKind.ORDER:
            return f"{self.src} ~> {self.dst}"
        sel = f"[{self.select[0]}:{self.select[1]}]" if self.select else ""
        return f"{self.src}.{self.src_port}{sel} -> {self.dst}.{self.dst_port}"


class GraphError(ValueError):
    """A graph is malformed; the message names the node, port or edge at fault."""


class Graph:
    """A mutable container of nodes and edges with adjacency queries.

    Passes take a graph and return a new one; they work on ``graph.copy()`` so the
    input is never changed.

    Examples:
        >>> from primflow import Embed, Graph, Query, build_template, lower
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> template = build_template("embed_question", embed, outputs={"vectors": "vectors"})
        >>> graph = lower(template, Query("What is HNSW?"))
        >>> isinstance(graph, Graph), len(graph), graph.topo_order()
        (True, 3, ['input.question_list', 'embed', 'output.vectors'])
        >>> graph.node("embed").engine, graph.parents("embed"), graph.children("embed")
        ('embedder', ['input.question_list'], ['output.vectors'])
    """

    def __init__(self, nodes: Iterable[Node] = (), edges: Iterable[Edge] = ()) -> None:
        self._nodes: dict[str, Node] = {}
        self._edges: list[Edge] = []
        self._edge_set: set[Edge] = set()  # membership checks stay O(1) on big graphs
        for node in nodes:
            self.add_node(node)
        for edge in edges:
            self.add_edge(edge)

    # -- construction -------------------------------------------------------------
    def add_node(self, node: Node) -> Node:
        if node.name in self._nodes:
            raise GraphError(f"duplicate node name {node.name!r}")
        self._nodes[node.name] = node
        return node

    def replace_node(self, node: Node) -> None:
        """Swap in a new version of an existing node, keeping its edges and position."""
        if node.name not in self._nodes:
            raise GraphError(f"no node named {node.name!r}")
        self._nodes[node.name] = node

    def remove_node(self, name: str) -> Node:
        node = self.node(name)
        del self._nodes[name]
        self._edges = [e for e in self._edges if name not in (e.src, e.dst)]
        self._edge_set = set(self._edges)
        return node

    def add_edge(self, edge: Edge) -> Edge:
        for end in (edge.src, edge.dst):
            if end not in self._nodes:
                raise GraphError(f"edge {edge} refers to unknown node {end!r}")
        if edge.kind is EdgeKind.DATA:
            self._nodes[edge.src].output(edge.src_port)
            self._nodes[edge.dst].input(edge.dst_port)
        if edge not in self._edge_set:
            self._edges.append(edge)
            self._edge_set.add(edge)
        return edge

    def connect(
        self,
        src: str,
        src_port: str,
        dst: str,
        dst_port: str,
        select: tuple[int, int] | None = None,
    ) -> Edge:
        return self.add_edge(Edge(src, dst, src_port, dst_port, EdgeKind.DATA, select))

    def order(self, src: str, dst: str) -> Edge:
        """Add an ORDER edge: ``dst`` runs after ``src`` though no data flows."""
        return self.add_edge(Edge(src, dst, kind=EdgeKind.ORDER))

    def remove_edge(self, edge: Edge) -> None:
        self._edges.remove(edge)
        self._edge_set.discard(edge)

    def copy(self) -> Graph:
        """A new graph with the same nodes and edges (already validated: no re-checks)."""
        clone = Graph()
        clone._nodes = dict(self._nodes)
        clone._edges = list(self._edges)
        clone._edge_set = set(self._edge_set)
        return clone

    # -- queries ------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise GraphError(f"no node named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._nodes.values()))

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    @property
    def edges(self) -> list[Edge]:
        return list(self._edges)

    def in_edges(self, name: str) -> list[Edge]:
        return [e for e in self._edges if e.dst == name]

    def out_edges(self, name: str) -> list[Edge]:
        return [e for e in self._edges if e.src == name]

    def parents(self, name: str) -> list[str]:
        return _unique(e.src for e in self.in_edges(name))

    def children(self, name: str) -> list[str]:
        return _unique(e.dst for e in self.out_edges(name))

    def nodes_with_op(self, *ops: Op) -> list[Node]:
        return [n for n in self._nodes.values() if n.op in ops]

    def topo_order(self) -> list[str]:
        """Kahn's algorithm, stable in insertion order. Raises GraphError on a cycle."""
        indegree = {name: 0 for name in self._nodes}
        children: dict[str, list[str]] = {name: [] for name in self._nodes}
        for src, dst in {(e.src, e.dst) for e in self._edges}:
            indegree[dst] += 1
            children[src].append(dst)
        position = {name: i for i, name in enumerate(self._nodes)}
        ready = [n for n, d in indegree.items() if d == 0]
        order: list[str] = []
        while ready:
            ready.sort(key=position.__getitem__)
            name = ready.pop(0)
            order.append(name)
            for child in children[name]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        if len(order) != len(self._nodes):
            stuck = sorted(n for n, d in indegree.items() if d > 0)
            raise GraphError(f"graph has a cycle through {', '.join(stuck)}")
        return order

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return self.nodes == other.nodes and self._edge_set == other._edge_set

    def __repr__(self) -> str:
        return f"Graph({len(self._nodes)} nodes, {len(self._edges)} edges)"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
