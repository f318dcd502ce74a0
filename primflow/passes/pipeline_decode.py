"""Decode pipelining: hand each parsed item of a decode downstream as soon as it closes.

A splittable LLM_DECODE (it has a ``parser`` and ``num_items`` n >= 2) whose ``items``
output feeds a batchable per-item primitive becomes n LLM_PARTIAL_DECODE nodes
``<name>.p<i>`` (``index`` i, chained by ``state``: item i+1 follows item i in the
same request, provenance share 1/n of the decode), each emitting a one-element
``items`` list. The downstream batchable
chain (embed -> search -> rerank ...) is replicated per item and joined by an
AGGREGATE (top_k for hits, concat otherwise) that feeds the original consumer; inputs
that are not per item (the index, the question) reach every replica. Other readers of
``items`` get a concat of the partial decodes' items.

A decode whose ``text`` output is read is left alone: partial decodes emit items, not
the raw text, and decoding the same request twice would double the LLM work.
"""

from __future__ import annotations

from fractions import Fraction

from primflow.graph import ops
from primflow.graph.ir import EdgeKind, Graph, Node, Op, Port, PortType
from primflow.passes.chain import (
    PER_ITEM_OPS,
    Replication,
    Source,
    can_join_stages,
    data_out,
    follow_chain,
    replicate_chain,
    single_output,
    unique_name,
)

PASS_NAME = "pipeline_decode"
PARTIAL_SUFFIX = ".p"
ITEM_SUFFIX = ".p"
# Per-item replicas are not a stage chain: each waits for its own partial decode.
ITEMS = Replication(ITEM_SUFFIX, PASS_NAME, is_stage_chain=False)


def _num_items(node: Node) -> int | None:
    num_items = node.params.get("num_items")
    if not node.params.get("parser") or not isinstance(num_items, int) or num_items < 2:
        return None
    if not any(p.name == ops.ITEMS for p in node.outputs):
        return None
    return num_items


def _add_partial_decodes(graph: Graph, decode: Node, num_items: int) -> list[str]:
    names: list[str] = []
    for i in range(num_items):
        partial = decode.replace(
            name=unique_name(graph, f"{decode.name}{PARTIAL_SUFFIX}{i}"),
            op=Op.LLM_PARTIAL_DECODE,
            inputs=(Port(ops.STATE, PortType.LLM_STATE),),
            outputs=(Port(ops.ITEMS, PortType.TEXTS, 1), Port(ops.STATE, PortType.LLM_STATE)),
            params={**decode.params, "index": i, "num_items": num_items},
            provenance=decode.piece(PASS_NAME, Fraction(1, num_items)),
        )
        graph.add_node(partial)
        if names:
            graph.connect(names[-1], ops.STATE, partial.name, ops.STATE)
        names.append(partial.name)
    for edge in graph.in_edges(decode.name):
        if edge.kind is EdgeKind.ORDER:
            graph.order(edge.src, names[0])
        else:
            graph.connect(edge.src, edge.src_port, names[0], edge.dst_port, edge.select)
    return names


def _concat_items(graph: Graph, decode: Node, partials: list[str], num_items: int) -> str:
    join = Node(
        name=unique_name(graph, f"{decode.name}.items"),
        op=Op.AGGREGATE,
        inputs=tuple(Port(ops.part(i), PortType.TEXTS, 1) for i in range(num_items)),
        outputs=(Port(ops.RESULT, PortType.TEXTS, num_items),),
        params={"mode": ops.AggregateMode.CONCAT},
        origin=decode.origin,
        provenance=decode.piece(PASS_NAME),
    )
    graph.add_node(join)
    for i, name in enumerate(partials):
        graph.connect(name, ops.ITEMS, join.name, ops.part(i))
    return join.name


def _item_chain(graph: Graph, decode: Node, num_items: int) -> tuple[list[Node], str]:
    """The per-item batchable chain fed by the first qualifying ``items`` reader, and
    the port of its head that reads the items."""
    for edge in data_out(graph, decode.name, ops.ITEMS):
        head = graph.node(edge.dst)
        if edge.select is not None or not can_join_stages(graph, head, edge.dst_port, num_items):
            continue
        output = single_output(head)
        rest: list[Node] = []
        if head.op in PER_ITEM_OPS and output is not None and output.type.is_list:
            rest = follow_chain(graph, head.name, output.name, num_items)
        return [head, *rest], edge.dst_port
    return [], ""


def _qualifies(graph: Graph, decode: Node) -> bool:
    num_items = _num_items(decode)
    if num_items is None or data_out(graph, decode.name, ops.TEXT):
        return False
    return bool(_item_chain(graph, decode, num_items)[0])


def _pipeline_one(graph: Graph, decode: Node) -> None:
    num_items = _num_items(decode)
    assert num_items is not None
    chain, head_port = _item_chain(graph, decode, num_items)
    partials = _add_partial_decodes(graph, decode, num_items)
    sources = [Source(name, ops.ITEMS) for name in partials]
    ranges = [(i, i + 1) for i in range(num_items)]
    replicate_chain(graph, chain, ranges, ITEMS, head_feed=(head_port, sources))
    other_readers = data_out(graph, decode.name, ops.ITEMS)
    if other_readers:
        concat = _concat_items(graph, decode, partials, num_items)
        for edge in other_readers:
            graph.connect(concat, ops.RESULT, edge.dst, edge.dst_port, edge.select)
    for edge in graph.out_edges(decode.name):
        if edge.kind is EdgeKind.ORDER:
            graph.order(partials[-1], edge.dst)
    graph.remove_node(decode.name)


def pipeline_decode(graph: Graph) -> Graph:
    """``graph`` with every pipelinable splittable decode split per item: a new graph,
    or ``graph`` itself when none qualifies."""
    decodes = [n.name for n in graph.nodes_with_op(Op.LLM_DECODE) if _qualifies(graph, n)]
    if not decodes:
        return graph
    result = graph.copy()
    for name in decodes:
        if name in result and _qualifies(result, result.node(name)):
            _pipeline_one(result, result.node(name))
    return result
