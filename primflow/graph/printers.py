"""Human- and tool-readable renderings of a graph: text, JSON, Graphviz dot, Mermaid.

Invariants: output is deterministic (nodes in topological order, ties broken by
insertion order; params sorted by key), so golden tests can compare it byte for byte.
A graph with a cycle still prints, in insertion order, so a broken graph can be shown.

Text format, one line per node::

    embed_docs.s0 = embed[embedder](items=input_chunks.value[0:111]) -> vectors:vectors(111)

``name = op[engine](port=src.port[select], ..., ~order_parent) -> port:type(num_items)``
followed by ``{params}`` when the node has any. An input with no edge prints ``-``.
Provenance (source, pass, share, stage) is in the JSON form only: the text lines are
already long, and a pass's node names say enough for a reader there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from primflow.graph.ir import INLINE_OPS, LLM_OPS, Edge, EdgeKind, Graph, GraphError, Node, Op, Port

MAX_PARAM_CHARS = 48


def node_order(graph: Graph) -> list[str]:
    """Topological order, or insertion order if the graph has a cycle."""
    try:
        return graph.topo_order()
    except GraphError:
        return [n.name for n in graph]


def _select(edge: Edge) -> str:
    return f"[{edge.select[0]}:{edge.select[1]}]" if edge.select else ""


def _source(edge: Edge) -> str:
    return f"{edge.src}.{edge.src_port}{_select(edge)}"


def _port_type(port: Port) -> str:
    size = f"({port.num_items})" if port.num_items is not None else ""
    optional = "?" if port.is_optional else ""
    return f"{port.type}{size}{optional}"


def _short(value: Any) -> str:
    text = repr(str(value)) if isinstance(value, str) else json.dumps(jsonable(value))
    if len(text) > MAX_PARAM_CHARS:
        text = text[: MAX_PARAM_CHARS - 1] + "…"
    return text


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a param value (enums as their value, tuples as lists)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [jsonable(v) for v in items]
    if isinstance(value, str):
        return str(value)  # a StrEnum prints as its value
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def node_line(graph: Graph, node: Node) -> str:
    """One node in the text format."""
    in_edges = graph.in_edges(node.name)
    args = []
    for port in node.inputs:
        sources = [
            _source(e) for e in in_edges if e.kind is EdgeKind.DATA and e.dst_port == port.name
        ]
        args.append(f"{port.name}={'|'.join(sources) or '-'}")
    args.extend(f"~{e.src}" for e in in_edges if e.kind is EdgeKind.ORDER)
    engine = f"[{node.engine}]" if node.engine else ""
    outputs = ", ".join(f"{p.name}:{_port_type(p)}" for p in node.outputs)
    line = f"{node.name} = {node.op}{engine}({', '.join(args)})"
    if outputs:
        line += f" -> {outputs}"
    if node.params:
        params = ", ".join(f"{k}={_short(node.params[k])}" for k in sorted(node.params))
        line += f" {{{params}}}"
    return line


def to_text(graph: Graph) -> str:
    """The whole graph, one line per node in topological order."""
    return "\n".join(node_line(graph, graph.node(name)) for name in node_order(graph)) + "\n"


def to_json(graph: Graph) -> dict[str, Any]:
    """``{"nodes": [{"name", "op", "parents", "engine", ...}]}`` in topological order."""
    nodes = []
    for name in node_order(graph):
        node = graph.node(name)
        in_edges = graph.in_edges(name)
        nodes.append(
            {
                "name": name,
                "op": str(node.op),
                "parents": graph.parents(name),
                "engine": node.engine,
                "inputs": [_port_json(p, in_edges) for p in node.inputs],
                "outputs": [_port_json(p, []) for p in node.outputs],
                "after": [e.src for e in in_edges if e.kind is EdgeKind.ORDER],
                "params": jsonable(node.params),
                "is_batchable": node.is_batchable,
                "is_splittable": node.is_splittable,
                "origin": node.origin,
                "provenance": provenance_json(node),
            }
        )
    return {"nodes": nodes}


def provenance_json(node: Node) -> dict[str, Any]:
    """``{"source", "pass", "share"}`` (the share as an exact ``"p/q"``), plus
    ``"stage": {"chain", "index", "num_stages"}`` for a stage of a decomposed batch."""
    provenance = node.provenance
    data: dict[str, Any] = {
        "source": node.source,
        "pass": provenance.pass_name,
        "share": str(provenance.share),
    }
    if provenance.stage is not None:
        stage = provenance.stage
        data["stage"] = {"chain": stage.chain, "index": stage.index, "num_stages": stage.num_stages}
    return data


def _port_json(port: Port, in_edges: list[Edge]) -> dict[str, Any]:
    data: dict[str, Any] = {"port": port.name, "type": str(port.type), "num_items": port.num_items}
    if port.is_optional:
        data["is_optional"] = True
    sources = [_source(e) for e in in_edges if e.kind is EdgeKind.DATA and e.dst_port == port.name]
    if sources:
        data["from"] = sources
    return data


def _shape(node: Node) -> str:
    if node.op in (Op.INPUT, Op.OUTPUT):
        return "ellipse"
    if node.op in INLINE_OPS:
        return "diamond"
    if node.op in LLM_OPS:
        return "box3d"
    return "box"


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _edge_label(edge: Edge) -> str:
    if edge.src_port == edge.dst_port:
        return f"{edge.src_port}{_select(edge)}"
    return f"{edge.src_port}{_select(edge)} → {edge.dst_port}"


def to_dot(graph: Graph, name: str = "pgraph") -> str:
    """Graphviz dot; ORDER edges are dashed."""
    lines = [f"digraph {_dot_quote(name)} {{", "  rankdir=TB;", "  node [fontname=Helvetica];"]
    for node_name in node_order(graph):
        node = graph.node(node_name)
        engine = f"[{node.engine}]" if node.engine else ""
        label = f"{node.name}\n{node.op}{engine}"
        lines.append(
            f"  {_dot_quote(node.name)} [label={_dot_quote(label)}, shape={_shape(node)}];"
        )
    for edge in _sorted_edges(graph):
        ends = f"  {_dot_quote(edge.src)} -> {_dot_quote(edge.dst)}"
        if edge.kind is EdgeKind.ORDER:
            lines.append(f"{ends} [style=dashed];")
        else:
            lines.append(f"{ends} [label={_dot_quote(_edge_label(edge))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart; node ids are ``n<i>`` because names may hold dots."""
    order = node_order(graph)
    ids = {name: f"n{i}" for i, name in enumerate(order)}
    lines = ["flowchart TD"]
    for name in order:
        node = graph.node(name)
        engine = f"[{node.engine}]" if node.engine else ""
        label = f"{name}<br/>{node.op}{engine}".replace('"', "#quot;")
        lines.append(f'  {ids[name]}["{label}"]')
    for edge in _sorted_edges(graph):
        if edge.kind is EdgeKind.ORDER:
            lines.append(f"  {ids[edge.src]} -.-> {ids[edge.dst]}")
        else:
            label = _edge_label(edge).replace('"', "#quot;").replace("|", "#124;")
            lines.append(f'  {ids[edge.src]} -->|"{label}"| {ids[edge.dst]}')
    return "\n".join(lines) + "\n"


def _sorted_edges(graph: Graph) -> list[Edge]:
    """Edges by (consumer position, consumer port order, producer position)."""
    position = {name: i for i, name in enumerate(node_order(graph))}

    def key(edge: Edge) -> tuple[int, int, int, str]:
        dst = graph.node(edge.dst)
        ports = [p.name for p in dst.inputs]
        port_pos = ports.index(edge.dst_port) if edge.dst_port in ports else len(ports)
        return (position[edge.dst], port_pos, position[edge.src], edge.src_port)

    return sorted(graph.edges, key=key)
