"""Stage decomposition: split a big batch into stages pipelined into its consumers.

A batchable, per-item primitive (embed, vector search, web search) whose list input
is larger than its engine's efficient batch size becomes ``k`` stages ``<name>.s<i>``,
each reading a ``select`` slice of the input. The downstream batchable chain is
replicated stage for stage (``embed.s<i> -> ingest.s<i>``), so stage i's consumer
starts while stage i+1 still embeds; an AGGREGATE ``<end>.join`` merges the stages
where the chain ends (see :mod:`primflow.passes.chain`).

The micro-batch size comes from the engine's :class:`LatencyProfile` (keyed by engine
name, else the default profile of the engine kind that runs the op), never from a
constant here. As in the paper, a primitive is split only when a batchable consumer
can pipeline with it; without one, splitting would only add overhead. Stage inputs
are at most the efficient batch size, so a second run changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from primflow.engines.base import OPS_BY_KIND, EngineKind
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph, Node, Op
from primflow.passes.chain import (
    ALIGNED_PORTS,
    PER_ITEM_OPS,
    can_join_stages,
    follow_chain,
    replicate_chain,
    single_output,
)

STAGE_SUFFIX = ".s"


def kind_of(op: Op) -> EngineKind | None:
    """The kind of engine that runs ``op`` (None for inline ops)."""
    return next((kind for kind, kind_ops in OPS_BY_KIND.items() if op in kind_ops), None)


def profile_for(node: Node, profiles: Mapping[str, LatencyProfile]) -> LatencyProfile:
    """The node's engine profile, else the default of its engine kind."""
    if node.engine is not None and node.engine in profiles:
        return profiles[node.engine]
    kind = kind_of(node.op)
    return LatencyProfile.default_for(kind) if kind is not None else LatencyProfile()


def stage_ranges(num_items: int, micro_batch_size: int) -> list[tuple[int, int]]:
    num_stages = math.ceil(num_items / micro_batch_size)
    return [
        (i * micro_batch_size, min((i + 1) * micro_batch_size, num_items))
        for i in range(num_stages)
    ]


def _batch_items(graph: Graph, node: Node) -> int | None:
    """The head's item count when every aligned input agrees on it, else None."""
    sizes = {node.input(name).num_items for name in ALIGNED_PORTS.get(node.op, ())}
    if len(sizes) != 1:
        return None
    size = sizes.pop()
    return size if size is not None and can_join_stages(graph, node, None, size) else None


def plan_stages(
    graph: Graph, node: Node, profiles: Mapping[str, LatencyProfile]
) -> tuple[list[Node], list[tuple[int, int]]] | None:
    """(chain to replicate, stage ranges) when ``node`` should be decomposed, else None."""
    num_items = _batch_items(graph, node)
    output = single_output(node)
    if node.op not in PER_ITEM_OPS or num_items is None or output is None:
        return None
    micro_batch_size = profile_for(node, profiles).micro_batch_size(num_items)
    if micro_batch_size >= num_items:
        return None
    consumers = follow_chain(graph, node.name, output.name, num_items)
    if not consumers:
        return None
    return [node, *consumers], stage_ranges(num_items, micro_batch_size)


def decompose_stages(graph: Graph, profiles: Mapping[str, LatencyProfile] | None = None) -> Graph:
    """``graph`` with every oversized pipelinable batch split into stages: a new graph,
    or ``graph`` itself when nothing qualifies (passes never mutate their input)."""
    known = profiles or {}
    if not any(plan_stages(graph, node, known) for node in graph):
        return graph
    result = graph.copy()
    for name in graph.topo_order():
        plan = plan_stages(result, result.node(name), known) if name in result else None
        if plan is not None:
            replicate_chain(result, plan[0], plan[1], STAGE_SUFFIX)
    return result
