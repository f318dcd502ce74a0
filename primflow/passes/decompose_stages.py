"""Stage decomposition: split a big batch into stages pipelined into its consumers,
when the modelled pipeline is clearly faster than running the batch whole.

A batchable, per-item primitive (embed, vector search, web search, a batchable user
function) whose list input
is larger than its engine's efficient batch size may become ``k`` stages
``<name>.s<i>``, each reading a ``select`` slice of the input and recording its
:class:`~primflow.graph.ir.Stage` (index i of k) and item share in its provenance (the
runtime ranks and the bound read those, never the name). The downstream batchable
chain is replicated stage for stage (``embed.s<i> -> ingest.s<i>``), so stage i's
consumer starts while stage i+1 still embeds; an AGGREGATE ``<end>.join`` merges the
stages where the chain ends (see :mod:`primflow.passes.chain`).

When it splits (as in the paper, only when the pipelining gain is real):

- the head's list input is larger than its efficient batch size (the micro-batch
  size comes from the engine's :class:`LatencyProfile`, keyed by engine name, else
  the default profile of the engine kind that runs the op; never a constant here);
- a batchable consumer can pipeline with it (``follow_chain``); and
- modelled as a flow shop (stage i on chain link j takes
  ``profile_for(link_j).latency_s(stage items)``), the pipelined makespan is at least
  ``min_gain_fraction`` below the unsplit one (the sum of each link's whole-batch
  latency). Splitting has a cost the linear profiles do not see (measured: the CPU
  embedder pads more when a batch is cut, +16-30 %), so a marginal modelled win is
  not taken.

Worked numbers for the default ``min_gain_fraction`` (0.1): with the CPU defaults
(embedder 2 ms + 12 ms/item, vector index 0.5 ms + 0.2 ms/item) 92 chunks in 3 stages
model 1.117 s against 1.125 s whole (0.7 % gain) and 282 chunks in 9 stages 3.408 s
against 3.443 s (1.0 %): not split, since ingest is too cheap to hide anything
behind. With the GPU preset (``primflow.sim.profiles``: embed 5 ms + 1 ms/item,
pgvector ingest 2 ms + 0.5 ms/item) 1,000 chunks in 8 stages model 1.105 s against
1.507 s (26.7 %): split.

Invariant: a second run changes nothing. Stage inputs are at most the efficient batch
size, so stages are never split again, and the decision for an unsplit batch depends
only on the graph and the profiles, which a run does not change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from primflow.engines.base import OPS_BY_KIND, EngineKind
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph, Node, Op
from primflow.passes.chain import (
    PER_ITEM_OPS,
    Replication,
    aligned_ports,
    can_join_stages,
    follow_chain,
    replicate_chain,
    single_output,
)

PASS_NAME = "decompose_stages"
STAGE_SUFFIX = ".s"
STAGES = Replication(STAGE_SUFFIX, PASS_NAME, is_stage_chain=True)

# Split only when the modelled pipeline is at least this fraction faster than the whole
# batch. Cutting a batch costs more than a linear profile predicts: on this machine the
# MiniLM embedder sorts a call's texts by length and pads each sub-batch to its longest,
# so 92 chunks as 3 calls of 31 took 30 % longer than one call (62 + 30: 16 %). Only a
# clear pipelining win pays for that; a marginal one (CPU defaults: ~1 %) does not.
DEFAULT_MIN_GAIN_FRACTION = 0.1


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
    sizes = {node.input(name).num_items for name in aligned_ports(node) or ()}
    if len(sizes) != 1:
        return None
    size = sizes.pop()
    return size if size is not None and can_join_stages(graph, node, None, size) else None


def pipelined_makespan_s(latencies_s: Sequence[Sequence[float]]) -> float:
    """Makespan of a flow shop: ``latencies_s[j][i]`` is stage i on chain link j.

    Link j starts stage i once it finished stage i-1 and link j-1 finished stage i:
    ``C[j][i] = max(C[j-1][i], C[j][i-1]) + t[j][i]``; the makespan is the last C.
    """
    previous_link: list[float] = []
    for link in latencies_s:
        done_s = 0.0
        finished: list[float] = []
        for i, latency_s in enumerate(link):
            upstream_s = previous_link[i] if previous_link else 0.0
            done_s = max(upstream_s, done_s) + latency_s
            finished.append(done_s)
        previous_link = finished
    return previous_link[-1] if previous_link else 0.0


def _link_items(node: Node, num_items: int) -> int:
    """Items ``node`` handles per item of the chain head (a search -> rerank link sees
    top_k hits per query); 1 when the sizes are unknown or do not divide."""
    sizes = [node.input(name).num_items for name in aligned_ports(node) or ()]
    known = [size for size in sizes if size is not None]
    if not known or max(known) % num_items:
        return 1
    return max(known) // num_items


def pipelining_gain(
    chain: Sequence[Node],
    ranges: Sequence[tuple[int, int]],
    profiles: Mapping[str, LatencyProfile],
) -> float:
    """Modelled fraction of the whole-batch latency that pipelining ``chain`` over
    ``ranges`` saves (negative when the stages cost more); 0 when nothing is modelled."""
    num_items = ranges[-1][1] - ranges[0][0]
    latencies_s: list[list[float]] = []
    unsplit_s = 0.0
    for node in chain:
        profile, per_head_item = profile_for(node, profiles), _link_items(node, num_items)
        unsplit_s += profile.latency_s(num_items=num_items * per_head_item)
        latencies_s.append(
            [profile.latency_s(num_items=(stop - start) * per_head_item) for start, stop in ranges]
        )
    if unsplit_s <= 0:
        return 0.0
    return (unsplit_s - pipelined_makespan_s(latencies_s)) / unsplit_s


def plan_stages(
    graph: Graph,
    node: Node,
    profiles: Mapping[str, LatencyProfile],
    min_gain_fraction: float = DEFAULT_MIN_GAIN_FRACTION,
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
    chain, ranges = [node, *consumers], stage_ranges(num_items, micro_batch_size)
    gain = pipelining_gain(chain, ranges, profiles)
    if gain <= 0 or gain < min_gain_fraction:
        return None
    return chain, ranges


def decompose_stages(
    graph: Graph,
    profiles: Mapping[str, LatencyProfile] | None = None,
    *,
    min_gain_fraction: float = DEFAULT_MIN_GAIN_FRACTION,
) -> Graph:
    """``graph`` with every oversized batch split into stages where pipelining saves at
    least ``min_gain_fraction`` of the modelled latency: a new graph, or ``graph`` itself
    when nothing qualifies (passes never mutate their input)."""
    if not 0 <= min_gain_fraction < 1:
        raise ValueError(
            f"decompose_stages: min_gain_fraction must be in [0, 1), got {min_gain_fraction}"
        )
    known = profiles or {}
    if not any(plan_stages(graph, node, known, min_gain_fraction) for node in graph):
        return graph
    result = graph.copy()
    for name in graph.topo_order():
        node = result.node(name) if name in result else None
        plan = plan_stages(result, node, known, min_gain_fraction) if node is not None else None
        if plan is not None:
            replicate_chain(result, plan[0], plan[1], STAGES)
    return result
