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


def _decompose_one(graph: Graph, node: Node, profiles: Mapping[str, LatencyProfile]) -> bool:
    """Decompose ``node`` in place if it qualifies; returns whether it did."""
    num_items = _batch_items(graph, node)
    output = single_output(node)
    if node.op not in PER_ITEM_OPS or num_items is None or output is None:
        return False
    micro_batch_size = profile_for(node, profiles).micro_batch_size(num_items)
    if micro_batch_size >= num_items:
        return False
    consumers = follow_chain(graph, node.name, output.name, num_items)
    if not consumers:
        return False
    ranges = stage_ranges(num_items, micro_batch_size)
    replicate_chain(graph, [node, *consumers], ranges, STAGE_SUFFIX)
    return True


def decompose_stages(graph: Graph, profiles: Mapping[str, LatencyProfile] | None = None) -> Graph:
    """A copy of ``graph`` with every oversized pipelinable batch split into stages."""
    result = graph.copy()
    known = profiles or {}
    for name in graph.topo_order():
        if name in result:
            _decompose_one(result, result.node(name), known)
    return result
