"""Shared rewriting for the two pipelining passes: find a chain of per-item batchable
primitives, replicate it once per stage, and join the replicas with an AGGREGATE.

Stage decomposition (stages = slices of a big list) and decode pipelining (stages =
the items of a partial decode) differ only in where each stage's items come from.

Invariants of a replicated chain:

- Item-aligned list inputs (``ALIGNED_PORTS``) are what stages split; every other
  input (an index handle, the question) is broadcast: each replica reads the original
  source.
- A chain continues through ops whose list output stays per item (embed, search);
  it ends at ops whose output is a whole (ingest -> index) or a selection (rerank ->
  top-k). The join's mode follows the end's output: ``all`` for a non-list value,
  ``top_k`` for hits, ``concat`` for other lists.
- Replica names are ``<name><suffix><i>``; the join is ``<end>.join``. Names are
  labels only: replica i of a link records in its provenance its source, the pass,
  its share of the link's items (``ranges[i]`` of the whole range) and, for a stage
  chain, its :class:`~primflow.graph.ir.Stage` (chain = the link it replaced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from primflow.graph import ops
from primflow.graph.ir import Edge, EdgeKind, Graph, Node, Op, Port, PortType, Provenance, Stage

# Per-item list inputs of each pipelinable op; stages slice these.
ALIGNED_PORTS: dict[Op, tuple[str, ...]] = {
    Op.EMBED: (ops.ITEMS,),
    Op.VECTOR_SEARCH: (ops.VECTORS,),
    Op.WEB_SEARCH: (ops.QUERIES,),
    Op.VECTOR_INGEST: (ops.CHUNKS, ops.VECTORS),
    Op.RERANK: (ops.HITS,),
}
# Ops whose output is still one list entry (or group) per input item. A batchable
# FUNCTION maps items one to one (its items port is in its FunctionRef).
PER_ITEM_OPS = frozenset({Op.EMBED, Op.VECTOR_SEARCH, Op.WEB_SEARCH, Op.FUNCTION})


def aligned_ports(node: Node) -> tuple[str, ...] | None:
    """The item-aligned list inputs of ``node`` (None: it cannot be staged)."""
    if node.op is Op.FUNCTION:
        ref = node.params.get("function")
        items = ref.items_port if isinstance(ref, ops.FunctionRef) else None
        return (items,) if items is not None else None
    return ALIGNED_PORTS.get(node.op)


@dataclass(frozen=True, slots=True)
class Replication:
    """How a pass names and records the replicas it makes: ``<name><suffix><i>``,
    provenance by ``pass_name``; ``is_stage_chain`` when the replicas of each link are
    the stages of one batch (run on one engine one after another)."""

    suffix: str
    pass_name: str
    is_stage_chain: bool


@dataclass(frozen=True, slots=True)
class Source:
    """Where stage i of the chain head reads the items fed from upstream."""

    node: str
    port: str
    select: tuple[int, int] | None = None


def unique_name(graph: Graph, name: str) -> str:
    candidate, i = name, 1
    while candidate in graph:
        candidate, i = f"{name}~{i}", i + 1
    return candidate


def data_out(graph: Graph, node: str, port: str) -> list[Edge]:
    return [e for e in graph.out_edges(node) if e.kind is EdgeKind.DATA and e.src_port == port]


def data_in(graph: Graph, node: str, port: str) -> list[Edge]:
    return [e for e in graph.in_edges(node) if e.kind is EdgeKind.DATA and e.dst_port == port]


def single_output(node: Node) -> Port | None:
    return node.outputs[0] if len(node.outputs) == 1 else None


def can_join_stages(graph: Graph, node: Node, fed_port: str | None, num_items: int) -> bool:
    """Whether ``node`` can run once per stage of ``num_items`` items.

    ``fed_port`` is the input that receives the previous chain link's per-stage output
    (None for the chain head); every other aligned input must hold exactly the
    ``num_items`` items, from one edge, so it can be sliced the same way.
    """
    aligned = aligned_ports(node)
    if not node.is_batchable or aligned is None or single_output(node) is None:
        return False
    if fed_port is not None and fed_port not in aligned:
        return False
    for name in aligned:
        if name == fed_port:
            continue
        port = node.input(name)
        if port.num_items != num_items or len(data_in(graph, node.name, name)) != 1:
            return False
    return True


def follow_chain(graph: Graph, src: str, src_port: str, num_items: int) -> list[Node]:
    """The per-item batchable consumers downstream of ``src.src_port``, in order."""
    chain: list[Node] = []
    while True:
        edges = data_out(graph, src, src_port)
        if len(edges) != 1 or edges[0].select is not None:
            return chain
        consumer = graph.node(edges[0].dst)
        if not can_join_stages(graph, consumer, edges[0].dst_port, num_items):
            return chain
        chain.append(consumer)
        output = single_output(consumer)
        if consumer.op not in PER_ITEM_OPS or output is None or not output.type.is_list:
            return chain
        src, src_port = consumer.name, output.name


def _stage_size(
    original: int | None, num_in: int | None, stage_in: int | None, op: Op
) -> int | None:
    """Size of a replica's list output, scaled from the original node's."""
    if original is None or stage_in is None:
        return None
    if op is Op.RERANK:
        return min(original, stage_in)
    if num_in and original % num_in == 0:
        return original // num_in * stage_in
    return None


def _compose(outer: tuple[int, int] | None, inner: tuple[int, int]) -> tuple[int, int]:
    base = outer[0] if outer is not None else 0
    return (base + inner[0], base + inner[1])


def replicate_chain(
    graph: Graph,
    chain: Sequence[Node],
    ranges: Sequence[tuple[int, int]],
    how: Replication,
    head_feed: tuple[str, Sequence[Source]] | None = None,
) -> Node:
    """Replace ``chain`` in ``graph`` (in place) by one replica per range, joined.

    ``ranges[i]`` are the items stage i handles; aligned inputs are sliced by it. Link
    k > 0 reads link k-1's replica i. ``head_feed`` = (port, per-stage sources) feeds
    one input of the head from upstream stages instead of a slice. Returns the join
    node; the chain end's consumers now read its ``result``.
    """
    prev: list[str] = []
    for position, node in enumerate(chain):
        if position:
            fed_port = _port_fed_by(graph, node, chain[position - 1].name)
            sources = [Source(name, chain[position - 1].outputs[0].name) for name in prev]
        elif head_feed is not None:
            fed_port, sources = head_feed[0], list(head_feed[1])
        else:
            fed_port, sources = None, []
        prev = [
            _add_replica(graph, node, _Piece(how, i, ranges), fed_port, sources)
            for i in range(len(ranges))
        ]
    join = _join(graph, chain[-1], prev, how.pass_name)
    names = {n.name for n in chain}
    for node in chain:
        for edge in graph.out_edges(node.name):
            if edge.dst in names:
                continue
            if edge.kind is EdgeKind.ORDER:
                graph.order(join.name, edge.dst)
            else:
                graph.connect(join.name, ops.RESULT, edge.dst, edge.dst_port, edge.select)
    for node in chain:
        graph.remove_node(node.name)
    return join


def _port_fed_by(graph: Graph, node: Node, src: str) -> str:
    return next(
        e.dst_port for e in graph.in_edges(node.name) if e.src == src and e.kind is EdgeKind.DATA
    )


@dataclass(frozen=True, slots=True)
class _Piece:
    """Replica ``index`` of a link: it handles ``ranges[index]`` of the link's items."""

    how: Replication
    index: int
    ranges: Sequence[tuple[int, int]]

    @property
    def items(self) -> tuple[int, int]:
        return self.ranges[self.index]

    def name(self, node: Node) -> str:
        return f"{node.name}{self.how.suffix}{self.index}"

    def provenance_of(self, node: Node) -> Provenance:
        start, stop = self.items
        share = Fraction(stop - start, self.ranges[-1][1] - self.ranges[0][0])
        stage = None
        if self.how.is_stage_chain:
            stage = Stage(chain=node.name, index=self.index, num_stages=len(self.ranges))
        return node.piece(self.how.pass_name, share, stage)


def _add_replica(
    graph: Graph,
    node: Node,
    piece: _Piece,
    fed_port: str | None,
    sources: Sequence[Source],
) -> str:
    i, stage = piece.index, piece.items
    aligned = aligned_ports(node)
    assert aligned is not None, f"{node.name} ({node.op}) has no aligned inputs"
    stage_items = stage[1] - stage[0]
    sizes: dict[str, int | None] = {p: stage_items for p in aligned}
    if fed_port is not None:
        fed_src = sources[i]
        sizes[fed_port] = graph.node(fed_src.node).output(fed_src.port).num_items
    ref = fed_port or aligned[0]
    replica = _replica(graph, node, piece, sizes, ref)
    graph.add_node(replica)
    for edge in graph.in_edges(node.name):
        if edge.kind is EdgeKind.ORDER:
            graph.order(edge.src, replica.name)
        elif edge.dst_port == fed_port:
            src = sources[i]
            graph.connect(src.node, src.port, replica.name, edge.dst_port, src.select)
        elif edge.dst_port in aligned:
            select = _compose(edge.select, stage)
            graph.connect(edge.src, edge.src_port, replica.name, edge.dst_port, select)
        else:
            graph.connect(edge.src, edge.src_port, replica.name, edge.dst_port, edge.select)
    return replica.name


def _replica(
    graph: Graph, node: Node, piece: _Piece, sizes: dict[str, int | None], ref: str
) -> Node:
    inputs = tuple(
        Port(p.name, p.type, sizes[p.name], p.is_optional) if p.name in sizes else p
        for p in node.inputs
    )
    num_in, stage_in = node.input(ref).num_items, sizes[ref]
    outputs = tuple(
        Port(p.name, p.type, _stage_size(p.num_items, num_in, stage_in, node.op))
        for p in node.outputs
    )
    return node.replace(
        name=unique_name(graph, piece.name(node)),
        inputs=inputs,
        outputs=outputs,
        provenance=piece.provenance_of(node),
    )


def join_mode(node: Node) -> tuple[ops.AggregateMode, int | None]:
    """How stage outputs of ``node`` merge back into its original output."""
    output = node.outputs[0]
    if not output.type.is_list:
        return ops.AggregateMode.ALL, None
    if output.type is PortType.HITS and node.op is not Op.FUNCTION:  # a map keeps order
        top_k = node.params.get("top_k") if node.op is Op.RERANK else output.num_items
        if isinstance(top_k, int):
            return ops.AggregateMode.TOP_K, top_k
    return ops.AggregateMode.CONCAT, None


def _join(graph: Graph, end: Node, replicas: list[str], pass_name: str) -> Node:
    output = end.outputs[0]
    mode, top_k = join_mode(end)
    params: dict[str, object] = {"mode": mode}
    if top_k is not None:
        params["top_k"] = top_k
    parts = []
    for i, name in enumerate(replicas):
        stage_out = graph.node(name).outputs[0]
        parts.append(Port(ops.part(i), stage_out.type, stage_out.num_items))
    join = Node(
        name=unique_name(graph, f"{end.name}.join"),
        op=Op.AGGREGATE,
        inputs=tuple(parts),
        outputs=(Port(ops.RESULT, output.type, output.num_items),),
        params=params,
        origin=end.origin,
        provenance=end.piece(pass_name),
    )
    graph.add_node(join)
    for i, name in enumerate(replicas):
        graph.connect(name, output.name, join.name, ops.part(i))
    return join
