"""The critical-path lower bound of a query from *uncontended* primitive latencies.

A measured service time on a shared engine includes the time the primitive shared the
engine (continuous batching, the other engine taking a core), so a critical path of
measured times equals the latency and bounds nothing. The bound here uses each
primitive's latency when it runs alone: the same question's ``sequential`` run (its
p-graph primitives run one at a time, each as one engine call, on the same engines and
placement) is the *reference*. Every engine node of the graph a scheme ran maps to the
p-graph node it was rewritten from (its provenance ``source``; never its name) and gets
that node's solo time times its provenance ``share``:

- stages, per-item replicas and partial decodes: their share of the original's items
  (a linear cost model without a fixed part per call, so the share is never too
  large; partial decodes, one item each and state-chained, sum to the whole decode
  along a path through all of them);
- the phases of a split prefill: their share of the prompt tokens (the runtime's
  estimates from the values it rendered), the provenance's even split if those are
  unknown.

A node with no reference (its p-graph node did not run in the reference) keeps its
measured service time; ``num_unmatched`` counts them, so a report can say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from primflow.graph.ir import INLINE_OPS, Graph, Node, Op
from primflow.session.timing import critical_path

PREFILL_PHASES = frozenset({Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL})


@dataclass(frozen=True, slots=True)
class SoloBound:
    """The uncontended critical path of one query and its length."""

    bound_s: float
    path: list[str]  # engine nodes on the path, in order
    solo_s: dict[str, float]  # uncontended latency per node of the graph
    num_unmatched: int  # engine nodes that kept their measured time

    def to_dict(self) -> dict[str, object]:
        return {
            "bound_s": round(self.bound_s, 6),
            "path": self.path,
            "num_unmatched": self.num_unmatched,
        }


def solo_times(
    graph: Graph,
    pgraph: Graph,
    reference_s: Mapping[str, float],
    measured_s: Mapping[str, float],
    num_tokens: Mapping[str, int] | None = None,
) -> tuple[dict[str, float], int]:
    """Uncontended latency of every node of ``graph`` (see the module docstring).

    ``reference_s``: solo service time per p-graph node; ``measured_s``: this run's
    service times (the fallback); ``num_tokens``: prompt tokens of prefill phases.
    Returns the times and the number of engine nodes that had no reference.
    """
    pgraph_names = {node.name for node in pgraph}
    groups: dict[str, list[Node]] = {}
    solo: dict[str, float] = {}
    num_unmatched = 0
    for node in graph:
        if node.op in INLINE_OPS:
            solo[node.name] = 0.0
            continue
        if node.source not in pgraph_names or node.source not in reference_s:
            solo[node.name] = measured_s.get(node.name, 0.0)
            num_unmatched += 1 if node.name in measured_s else 0
            continue
        groups.setdefault(node.source, []).append(node)
    for source, members in groups.items():
        for name, share in _shares(members, num_tokens or {}).items():
            solo[name] = reference_s[source] * share
    return solo, num_unmatched


def _shares(members: list[Node], num_tokens: Mapping[str, int]) -> dict[str, float]:
    """Each member's share of its source: its provenance share, with the prompt phases'
    joint share re-split by their tokens when every phase's count is known."""
    shares = {n.name: float(n.provenance.share) for n in members}
    phases = [n.name for n in members if n.op in PREFILL_PHASES]
    tokens = [float(num_tokens.get(name, 0)) for name in phases]
    if phases and all(t > 0 for t in tokens):
        joint = sum(shares[name] for name in phases)
        for name, num in zip(phases, tokens, strict=True):
            shares[name] = joint * num / sum(tokens)
    return shares


def solo_bound(
    graph: Graph,
    honored: Graph,
    pgraph: Graph,
    reference_s: Mapping[str, float],
    measured_s: Mapping[str, float],
    num_tokens: Mapping[str, int] | None = None,
) -> SoloBound:
    """The heaviest path of ``honored`` (the dependencies the scheme waited on, over the
    nodes of ``graph``) weighted by uncontended latencies."""
    solo, num_unmatched = solo_times(graph, pgraph, reference_s, measured_s, num_tokens)
    path, bound_s = critical_path(honored, solo)
    engine_path = [n for n in path if honored.node(n).op not in INLINE_OPS]
    return SoloBound(bound_s, engine_path, solo, num_unmatched)
