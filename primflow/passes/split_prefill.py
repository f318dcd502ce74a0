"""Prefill splitting: prefill the part of a prompt that is ready while retrieval runs.

For an LLM_PREFILL whose placeholders become ready at different times, the template is
cut just before the first *late* placeholder:

- ``<name>.partial`` (LLM_PARTIAL_PREFILL): the prefix, reading only early placeholders
  (with the ``system`` prompt); it must hold some text, else there is nothing to gain;
- ``<name>.full`` (LLM_FULL_PREFILL): the suffix plus the partial's ``state``.

Both keep the original ``request``, so the engine appends the suffix to the same
request; consumers of the original ``state`` read the full prefill's. Both record the
original's source in their provenance, with half its share each: how the prompt's
tokens split is known only at run time (the solo bound refines it then).

Ready times are estimated from the graph: each node finishes at the latest finish of
its parents plus its own predicted latency (the engine's profile; inline ops cost
nothing, an engine op with no known kind costs one unit, i.e. hop depth). A
placeholder is early when it is ready as soon as the earliest one (typically fed
straight from INPUT), late otherwise.

A prefill whose engine cannot reuse a prompt prefix (its profile says
``can_reuse_prefix = False``: a remote server without a prefix cache) is never split:
the partial prefill would be computed again by the full request.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from fractions import Fraction

from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import INLINE_OPS, Edge, EdgeKind, Graph, Node, Op, Port, PortType
from primflow.passes.chain import unique_name
from primflow.passes.decompose_stages import kind_of, profile_for

PASS_NAME = "split_prefill"
PARTIAL_SUFFIX = ".partial"
FULL_SUFFIX = ".full"
CHARS_PER_TOKEN = 4  # rough prompt-size estimate when only the template text is known
DEFAULT_MAX_TOKENS = 128
EPSILON_S = 1e-9
HALF = Fraction(1, 2)  # each phase's share of the prompt until its tokens are counted


def node_cost_s(node: Node, profiles: Mapping[str, LatencyProfile]) -> float:
    """Predicted latency of one node, for ranking ready times (not a promise)."""
    if node.op in INLINE_OPS:
        return 0.0
    if kind_of(node.op) is None:
        return 1.0
    profile = profile_for(node, profiles)
    if node.op is Op.LLM_DECODE or node.op is Op.LLM_PARTIAL_DECODE:
        max_tokens = node.params.get("max_tokens", DEFAULT_MAX_TOKENS)
        return profile.latency_s(num_output_tokens=int(max_tokens))
    template = node.params.get("template", "")
    num_tokens = len(template) // CHARS_PER_TOKEN if isinstance(template, str) else 0
    return profile.latency_s(num_items=node.num_items, num_tokens=num_tokens)


def finish_times_s(graph: Graph, profiles: Mapping[str, LatencyProfile]) -> dict[str, float]:
    """Estimated finish time of every node: longest profile-weighted path from the roots."""
    finish: dict[str, float] = {}
    for name in graph.topo_order():
        start = max((finish[p] for p in graph.parents(name)), default=0.0)
        finish[name] = start + node_cost_s(graph.node(name), profiles)
    return finish


def _template_pieces(template: str) -> list[tuple[str, str | None]]:
    """(raw text, placeholder or None) pieces that concatenate back to ``template``."""
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if literal:
            pieces.append((literal.replace("{", "{{").replace("}", "}}"), None))
        if field is not None:
            raw = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            pieces.append(("{" + raw + "}", field))
    return pieces


def cut_template(template: str, late: set[str]) -> tuple[str, str] | None:
    """(prefix, suffix) cut before the first late placeholder, or None when the prefix
    would hold no text or no placeholder is late."""
    pieces = _template_pieces(template)
    cut = next((i for i, (_, field) in enumerate(pieces) if field in late), None)
    if cut is None:
        return None
    prefix = "".join(raw for raw, _ in pieces[:cut])
    if not prefix.strip():
        return None
    return prefix, "".join(raw for raw, _ in pieces[cut:])


def _placeholder_ready_s(graph: Graph, node: Node, finish: dict[str, float]) -> dict[str, float]:
    return {e.dst_port: finish[e.src] for e in graph.in_edges(node.name) if e.kind is EdgeKind.DATA}


def _late_placeholders(graph: Graph, node: Node, finish: dict[str, float]) -> set[str]:
    ready = _placeholder_ready_s(graph, node, finish)
    if len(ready) < 2:
        return set()
    earliest = min(ready.values())
    return {name for name, ready_s in ready.items() if ready_s > earliest + EPSILON_S}


def _ports_for(node: Node, template: str) -> tuple[Port, ...]:
    names = ops.placeholders(template)
    return tuple(p for p in node.inputs if p.name in names)


def _split_one(graph: Graph, node: Node, prefix: str, suffix: str) -> None:
    base = {k: v for k, v in node.params.items() if k != "template"}
    partial = node.replace(
        name=unique_name(graph, f"{node.name}{PARTIAL_SUFFIX}"),
        op=Op.LLM_PARTIAL_PREFILL,
        inputs=_ports_for(node, prefix),
        params={**base, "template": prefix},
        provenance=node.piece(PASS_NAME, HALF),
    )
    full = node.replace(
        name=unique_name(graph, f"{node.name}{FULL_SUFFIX}"),
        op=Op.LLM_FULL_PREFILL,
        inputs=(Port(ops.STATE, PortType.LLM_STATE), *_ports_for(node, suffix)),
        params={k: v for k, v in {**base, "template": suffix}.items() if k != "system"},
        provenance=node.piece(PASS_NAME, HALF),
    )
    graph.add_node(partial)
    graph.add_node(full)
    graph.connect(partial.name, ops.STATE, full.name, ops.STATE)
    for edge in graph.in_edges(node.name):
        for target in (partial, full):
            if edge.kind is EdgeKind.ORDER:
                graph.order(edge.src, target.name)
            elif any(p.name == edge.dst_port for p in target.inputs):
                graph.add_edge(_retarget(edge, dst=target.name))
    for edge in graph.out_edges(node.name):
        graph.add_edge(
            Edge(full.name, edge.dst, edge.src_port, edge.dst_port, edge.kind, edge.select)
        )
    graph.remove_node(node.name)


def _retarget(edge: Edge, dst: str) -> Edge:
    return Edge(edge.src, dst, edge.src_port, edge.dst_port, edge.kind, edge.select)


def can_reuse_prefix(node: Node, profiles: Mapping[str, LatencyProfile]) -> bool:
    """Whether the node's engine keeps a prompt prefix for the request that follows."""
    return bool(getattr(profile_for(node, profiles), "can_reuse_prefix", True))


def split_prefill(graph: Graph, profiles: Mapping[str, LatencyProfile] | None = None) -> Graph:
    """``graph`` with every prefill whose inputs arrive at different times split into a
    partial and a full prefill: a new graph, or ``graph`` itself when none qualifies."""
    known = profiles or {}
    finish = finish_times_s(graph, known)
    cuts: list[tuple[Node, str, str]] = []
    for node in graph.nodes_with_op(Op.LLM_PREFILL):
        template = node.params.get("template")
        if not isinstance(template, str) or not can_reuse_prefix(node, known):
            continue
        cut = cut_template(template, _late_placeholders(graph, node, finish))
        if cut is not None:
            cuts.append((node, *cut))
    if not cuts:
        return graph
    result = graph.copy()
    for node, prefix, suffix in cuts:
        _split_one(result, node, prefix, suffix)
    return result
