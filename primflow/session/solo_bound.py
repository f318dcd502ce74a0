"""The critical-path lower bound of a query from *uncontended* primitive latencies.

A measured service time on a shared engine includes the time the primitive shared the
engine (continuous batching, the other engine taking a core), so a critical path of
measured times equals the latency and bounds nothing. The bound here uses each
primitive's latency when it runs alone: the same question's ``sequential`` run (its
p-graph primitives run one at a time, each as one engine call, on the same engines and
placement) is the *reference*. Every engine node of the graph a scheme ran maps to the
p-graph node it was rewritten from (its name minus the passes' suffixes: ``.s<i>``
stages, ``.p<i>`` partial decodes and per-item replicas, ``.partial``/``.full``
prefill phases, ``~<n>`` uniquifiers) and gets that node's solo time times its share:

- stage and per-item replicas: their share of the original's items (a linear cost
  model without a fixed part per call, so the share is never too large);
- a split prefill: its share of the prompt tokens (the runtime's estimates from the
  values it rendered), equal shares if those are unknown;
- partial decodes of one decode: equal shares (one item each, state-chained, so a path
  through all of them sums to the whole decode).

A node with no reference (its p-graph node did not run in the reference) keeps its
measured service time; ``num_unmatched`` counts them, so a report can say so.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass

from primflow.graph.ir import INLINE_OPS, Graph, Node, Op
from primflow.session.timing import critical_path

PREFILL_PHASES = frozenset({Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL})
_UNIQUIFIER = re.compile(r"~\d+$")


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


def pgraph_origin(name: str, pgraph_names: Container[str]) -> str | None:
    """The p-graph node an e-graph node ``name`` was rewritten from, or None."""
    candidate = name
    while True:
        candidate = _UNIQUIFIER.sub("", candidate)
        if candidate in pgraph_names:
            return candidate
        if "." not in candidate:
            return None
        candidate = candidate.rsplit(".", 1)[0]


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
        origin = pgraph_origin(node.name, pgraph_names)
        if origin is None or origin not in reference_s:
            solo[node.name] = measured_s.get(node.name, 0.0)
            num_unmatched += 1 if node.name in measured_s else 0
            continue
        groups.setdefault(origin, []).append(node)
    for origin, members in groups.items():
        for node, share in zip(members, _shares(members, num_tokens or {}), strict=True):
            solo[node.name] = reference_s[origin] * share
    return solo, num_unmatched


def _shares(members: list[Node], num_tokens: Mapping[str, int]) -> list[float]:
    if len(members) == 1:
        return [1.0]
    if all(n.op in PREFILL_PHASES for n in members):
        weights = [float(num_tokens.get(n.name, 0)) for n in members]
        if any(w <= 0 for w in weights):
            weights = [1.0] * len(members)
    else:
        weights = [float(n.num_items) for n in members]
    total = sum(weights)
    return [w / total for w in weights]


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
