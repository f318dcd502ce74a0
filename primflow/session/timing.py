"""Per-primitive timings of a finished query and its measured critical path.

The critical-path lower bound of a query is the sum of its primitives' *service* times
along the heaviest path of its e-graph: the time the query would take if every
primitive started the moment its inputs were ready (no queueing, no scheduling). A
primitive's service time is ``end - max(start, latest parent end)``: for an ordinary
node that is its engine time; for an LLM phase the runtime handed over early (a decode
dispatched before its prefill finished: a relaxed edge, runtime/plan.py) the wait for the
predecessor inside the engine is not counted twice. Inline ops (INPUT, OUTPUT, CONDITION,
AGGREGATE) and skipped nodes take no time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from primflow.graph.ir import INLINE_OPS, Graph
from primflow.runtime.query_state import NodeTiming


@dataclass(frozen=True, slots=True)
class PrimitiveTiming:
    """One primitive's measured times, relative to the query's start (seconds)."""

    node: str
    op: str
    engine: str | None
    ready_s: float
    start_s: float
    end_s: float
    service_s: float
    queue_s: float
    batch_size: int
    is_critical: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "op": self.op,
            "engine": self.engine,
            "ready_s": round(self.ready_s, 6),
            "start_s": round(self.start_s, 6),
            "end_s": round(self.end_s, 6),
            "service_s": round(self.service_s, 6),
            "queue_s": round(self.queue_s, 6),
            "batch_size": self.batch_size,
            "critical": self.is_critical,
        }


@dataclass(frozen=True, slots=True)
class TimingReport:
    primitives: list[PrimitiveTiming]  # in start order
    critical_path: list[str]
    bound_s: float  # sum of service times along the critical path

    def to_dicts(self) -> list[dict[str, object]]:
        return [p.to_dict() for p in self.primitives]


def service_times(graph: Graph, timings: Mapping[str, NodeTiming]) -> dict[str, float]:
    """Service time of every node that ran (0 for inline and skipped nodes)."""
    service: dict[str, float] = {}
    for node in graph:
        timing = timings.get(node.name)
        if node.op in INLINE_OPS or timing is None or timing.end_s is None:
            service[node.name] = 0.0
            continue
        start_s = timing.start_s if timing.start_s is not None else timing.ready_s
        parent_ends = [
            t.end_s
            for p in graph.parents(node.name)
            if (t := timings.get(p)) is not None and t.end_s is not None
        ]
        began_s = max([start_s, *parent_ends])
        service[node.name] = max(0.0, timing.end_s - began_s)
    return service


def critical_path(graph: Graph, service: Mapping[str, float]) -> tuple[list[str], float]:
    """The heaviest path through ``graph`` by ``service`` time, and its total."""
    best: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for name in graph.topo_order():
        parents = graph.parents(name)
        heaviest = max(parents, key=lambda p: best[p], default=None)
        best[name] = service.get(name, 0.0) + (best[heaviest] if heaviest else 0.0)
        via[name] = heaviest
    if not best:
        return [], 0.0
    end = max(best, key=best.__getitem__)
    path: list[str] = []
    cursor: str | None = end
    while cursor is not None:
        path.append(cursor)
        cursor = via[cursor]
    path.reverse()
    return path, best[end]


def timing_report(
    graph: Graph, timings: Mapping[str, NodeTiming], query_start_s: float
) -> TimingReport:
    """Relative timings of the engine primitives, the critical path and its bound."""
    service = service_times(graph, timings)
    path, bound_s = critical_path(graph, service)
    on_path = set(path)
    rows: list[PrimitiveTiming] = []
    for node in graph:
        timing = timings.get(node.name)
        if node.op in INLINE_OPS or timing is None or timing.end_s is None:
            continue
        if timing.start_s is None:  # skipped (an untaken branch): it never ran
            continue
        start_s = timing.start_s
        rows.append(
            PrimitiveTiming(
                node=node.name,
                op=str(node.op),
                engine=node.engine,
                ready_s=timing.ready_s - query_start_s,
                start_s=start_s - query_start_s,
                end_s=timing.end_s - query_start_s,
                service_s=service[node.name],
                queue_s=max(0.0, start_s - timing.ready_s),
                batch_size=timing.batch_size,
                is_critical=node.name in on_path,
            )
        )
    rows.sort(key=lambda r: (r.start_s, r.node))
    return TimingReport(rows, [n for n in path if service.get(n, 0.0) > 0], bound_s)
