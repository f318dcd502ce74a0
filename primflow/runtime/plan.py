"""The static analysis of an e-graph that the graph scheduler runs on.

``GraphPlan`` is computed once per graph (``PlanCache`` keeps it for the queries that
follow) and never changes; run state lives in ``QueryState``. It holds, per node:
where each input port reads from, how many edges it waits on, which children each of
its edges unblocks, its depth (longest hop distance to an output, the paper's
Algorithm 2) and its cost estimate for the critical-path rank. All of it is O(V + E).

The rank sees the engines, not only the edges: the stages of one decomposed batch (the
nodes whose provenance carries the same :class:`~primflow.graph.ir.Stage` chain) run on
one engine one after another, so stage i's rank also counts the stages after it
(``cost(s_i) + rank(s_{i+1})``). Only provenance says what is a stage: a node's name
never changes its plan. Without that, a quarter of a
document embedding ranked below an LLM partial prefill that actually waits for the
whole embedding, and the LLM took the cores from the critical path.

Relaxed edges (dependent pre-scheduling). The ``state`` edge from an LLM
phase to the next phase of the same call on the same engine (prefill -> decode,
partial prefill -> full prefill, partial decode i -> i + 1) is satisfied when the
producer is *dispatched*, not when it finishes: the engine links the phases by
``llm_request_id`` and runs them in order, so the next phase can wait inside the
engine instead of paying a scheduling round trip.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import INLINE_OPS, LLM_OPS, Edge, EdgeKind, Graph, GraphError, Node, Op
from primflow.runtime.growth import BranchPort, branch_guards
from primflow.runtime.query_state import PortKey

# Ops whose ``state`` input may be satisfied by the previous phase's dispatch.
CHAINED_OPS = frozenset({Op.LLM_DECODE, Op.LLM_FULL_PREFILL, Op.LLM_PARTIAL_DECODE})

# Cost estimates when a prompt's size is unknown before run time.
CHARS_PER_TOKEN = 4
TOKENS_PER_PROMPT_INPUT = 100
DEFAULT_MAX_TOKENS = 64


@dataclass(frozen=True, slots=True)
class InputBinding:
    """Input ``port`` reads ``src.src_port`` (sliced by ``select``)."""

    port: str
    src: str
    src_port: str
    select: tuple[int, int] | None
    is_optional: bool


@dataclass(slots=True)
class NodePlan:
    node: Node
    inputs: list[InputBinding] = field(default_factory=list)
    num_deps: int = 0  # in-edges (data and order) the node waits on
    # One entry per out-edge: (child, is_relaxed). A relaxed edge unblocks on dispatch.
    children: list[tuple[str, bool]] = field(default_factory=list)
    depth: int = 0
    cost_s: float = 0.0
    next_stage: str | None = None  # the next stage of its batch on the same engine

    @property
    def is_inline(self) -> bool:
        return self.node.op in INLINE_OPS


class GraphPlan:
    def __init__(self, graph: Graph, cost_s: Callable[[Node], float]) -> None:
        self.nodes: dict[str, NodePlan] = {n.name: NodePlan(n, cost_s=cost_s(n)) for n in graph}
        self.num_readers: dict[PortKey, int] = {}
        for edge in graph.edges:
            self._add_edge(edge.src, edge.dst, edge.src_port, edge.dst_port, edge.kind, edge.select)
        self.order = self._topo_order()
        self._set_depths()
        self._link_stages()
        self._rank_order = self._stage_aware_order()
        self.base_ranks = self.ranks()  # shared by every query; never mutated
        self.input_keys = [p.node.params.get("key", p.node.name) for p in self._of(Op.INPUT)]
        # Engine nodes only a CONDITION branch needs: held until it decides (growth.py).
        self.guards: dict[str, list[BranchPort]] = (
            branch_guards(graph) if any(True for _ in self._of(Op.CONDITION)) else {}
        )

    def _add_edge(
        self,
        src: str,
        dst: str,
        src_port: str,
        dst_port: str,
        kind: EdgeKind,
        select: tuple[int, int] | None,
    ) -> None:
        producer, consumer = self.nodes[src], self.nodes[dst]
        consumer.num_deps += 1
        is_relaxed = False
        if kind is EdgeKind.DATA:
            if any(b.port == dst_port for b in consumer.inputs):
                raise GraphError(f"input {dst}.{dst_port} is fed by more than one edge")
            port = consumer.node.input(dst_port)
            consumer.inputs.append(InputBinding(dst_port, src, src_port, select, port.is_optional))
            key = (src, src_port)
            self.num_readers[key] = self.num_readers.get(key, 0) + 1
            is_relaxed = _is_chained(producer.node, consumer.node, dst_port)
        producer.children.append((dst, is_relaxed))

    def _of(self, op: Op) -> Iterable[NodePlan]:
        return (p for p in self.nodes.values() if p.node.op is op)

    def _topo_order(self) -> list[str]:
        num_waiting = {name: p.num_deps for name, p in self.nodes.items()}
        ready = deque(name for name, n in num_waiting.items() if n == 0)
        order: list[str] = []
        while ready:
            name = ready.popleft()
            order.append(name)
            for child, _ in self.nodes[name].children:
                num_waiting[child] -= 1
                if num_waiting[child] == 0:
                    ready.append(child)
        if len(order) != len(self.nodes):
            stuck = sorted(n for n, k in num_waiting.items() if k > 0)
            raise GraphError(f"graph has a cycle through {', '.join(stuck)}")
        return order

    def _set_depths(self) -> None:
        for name in reversed(self.order):
            plan = self.nodes[name]
            plan.depth = max((self.nodes[c].depth + 1 for c, _ in plan.children), default=0)

    def _link_stages(self) -> None:
        groups: dict[tuple[str, str, str, Op], list[tuple[int, str]]] = {}
        for name, plan in self.nodes.items():
            node = plan.node
            stage = node.provenance.stage
            if stage is not None and node.engine is not None:
                key = (node.source, stage.chain, node.engine, node.op)
                groups.setdefault(key, []).append((stage.index, name))
        for stages in groups.values():
            ordered = [name for _, name in sorted(stages)]
            for name, after in itertools.pairwise(ordered):
                self.nodes[name].next_stage = after

    def _stage_aware_order(self) -> list[str]:
        """A reverse-rank order: every node after its children and its next stage."""
        rank_children = {
            name: [c for c, _ in p.children] + ([p.next_stage] if p.next_stage else [])
            for name, p in self.nodes.items()
        }
        done: set[str] = set()
        order: list[str] = []
        for root in reversed(self.order):  # iterative DFS post-order, O(V + E)
            stack = [(root, iter(rank_children[root]))]
            if root in done:
                continue
            done.add(root)
            while stack:
                name, children = stack[-1]
                child = next((c for c in children if c not in done), None)
                if child is None:
                    order.append(name)
                    stack.pop()
                else:
                    done.add(child)
                    stack.append((child, iter(rank_children[child])))
        return order

    def ranks(self, excluded: Iterable[str] = ()) -> dict[str, float]:
        """Upward rank: cost(v) + max over children (and its next stage) of their rank,
        in seconds. Nodes in ``excluded`` (skipped ones) count as absent.
        """
        skip = set(excluded)
        rank: dict[str, float] = {}
        for name in self._rank_order:
            if name in skip:
                rank[name] = 0.0
                continue
            plan = self.nodes[name]
            below = max((rank[c] for c, _ in plan.children if c not in skip), default=0.0)
            if plan.next_stage is not None and plan.next_stage not in skip:
                below = max(below, rank[plan.next_stage])
            rank[name] = plan.cost_s + below
        return rank


def _is_chained(producer: Node, consumer: Node, dst_port: str) -> bool:
    return (
        dst_port == ops.STATE
        and consumer.op in CHAINED_OPS
        and producer.op in LLM_OPS
        and producer.engine == consumer.engine
        and producer.params.get("request") == consumer.params.get("request")
    )


def estimate_cost_s(node: Node, profile: LatencyProfile | None) -> float:
    """Predicted latency of ``node`` from its engine profile; inline ops cost nothing."""
    if profile is None or node.op in INLINE_OPS:
        return 0.0
    num_tokens = 0
    num_output_tokens = 0
    if node.op in (Op.LLM_PREFILL, Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL):
        template = str(node.params.get("template", ""))
        num_tokens = len(template) // CHARS_PER_TOKEN + TOKENS_PER_PROMPT_INPUT * len(node.inputs)
    elif node.op is Op.LLM_DECODE:
        num_output_tokens = int(node.params.get("max_tokens", DEFAULT_MAX_TOKENS))
    elif node.op is Op.LLM_PARTIAL_DECODE:
        max_tokens = int(node.params.get("max_tokens", DEFAULT_MAX_TOKENS))
        num_output_tokens = max(1, max_tokens // max(1, int(node.params.get("num_items", 1))))
    num_items = 1 if node.op in LLM_OPS else node.num_items
    return profile.latency_s(num_items, num_tokens, num_output_tokens)


class PlanCache:
    """Plans of recently run graphs, so N queries of one e-graph analyse it once.

    Keyed by the identities of the graph's node and edge objects, in order. Nodes and
    edges are frozen, so equal keys mean equal graphs: resubmitting a graph, or a copy
    of it (``GraphCache`` hits are copies that share their nodes and edges), reuses
    the plan, while a graph changed after a run has a new key and gets a fresh plan.
    An entry holds its nodes and edges, so the ids in a live key cannot be reused by
    other objects. A lookup is O(V + E) pointer reads and one hash: microseconds,
    against ~100 us to build the plan of a 40-node graph.
    """

    def __init__(self, max_num_entries: int) -> None:
        if max_num_entries < 0:
            raise ValueError(f"max_num_cached_plans must be >= 0, got {max_num_entries}")
        self.max_num_entries = max_num_entries
        self._entries: OrderedDict[tuple[int, ...], tuple[GraphPlan, list[Edge]]] = OrderedDict()
        self.num_builds = 0  # plans built (cache misses), for tests and benchmarks

    @staticmethod
    def key(graph: Graph) -> tuple[tuple[int, ...], list[Edge]]:
        edges = graph.edges
        ids = [id(node) for node in graph]
        ids.append(-1)  # ids are positive: -1 separates the nodes from the edges
        ids.extend(map(id, edges))
        return tuple(ids), edges

    def get(self, key: tuple[int, ...]) -> GraphPlan | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: tuple[int, ...], plan: GraphPlan, edges: list[Edge]) -> None:
        self.num_builds += 1
        if self.max_num_entries == 0:
            return
        self._entries[key] = (plan, edges)
        if len(self._entries) > self.max_num_entries:
            self._entries.popitem(last=False)
