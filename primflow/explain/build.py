"""Building an :class:`Explanation` from a finished query (or a saved run result).

The latency path: from the primitive that ended last, step back each time to the
parent (through inline ops, in the dependencies the scheme honored) that ended last:
the work each step waited for. Its segments tile the time from the query's start to
the last primitive's end, and each segment, from the predecessor's end to the
primitive's end, splits into

- runtime overhead: predecessor's end until the primitive was ready (inline ops, the
  event loop), plus the tail from the last primitive to the query's end;
- queue wait: ready until handed to its engine (the engine scheduler's queue);
- waiting for cores: inside the execution, while its engine waited for cores other
  engines held (the core budget's recorded waits);
- execution beyond running alone: the rest of the execution less its uncontended
  latency (from the reference run; sharing an engine or batch with other work);
- and its uncontended latency.

So latency = sum of the first four + the path's uncontended latencies, and the gap to
the bound (the heaviest uncontended path) is the first four plus the path's
uncontended total minus the bound (zero or negative: the bound's path is heavier).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from primflow.engines.placement import CoreWait
from primflow.explain.model import (
    EngineTime,
    ExplainFormatError,
    Explanation,
    Gap,
    GapCause,
    GraphView,
    PassChange,
    PrimitiveView,
)
from primflow.explain.passes import PassStep
from primflow.graph.ir import INLINE_OPS, Graph
from primflow.graph.printers import node_order
from primflow.session.session import Answer
from primflow.tracing.batches import BatchRecord


def graph_view(graph: Graph) -> GraphView:
    """The graph's nodes in the printers' (topological) order, and its edges."""
    nodes = [
        {
            "name": n.name,
            "op": str(n.op),
            "engine": n.engine,
            "pass": n.provenance.pass_name,
            "source": n.source,
        }
        for n in map(graph.node, node_order(graph))
    ]
    edges = [(e.src, e.dst, str(e.kind)) for e in graph.edges]
    return GraphView(nodes, edges)


def engine_parents(graph: Graph) -> dict[str, list[str]]:
    """Each engine node's nearest engine ancestors (inline ops looked through)."""
    parents: dict[str, list[str]] = {}
    for node in graph:
        found: list[str] = []
        frontier = list(graph.parents(node.name))
        seen: set[str] = set()
        while frontier:
            name = frontier.pop()
            if name in seen:
                continue
            seen.add(name)
            if graph.node(name).op in INLINE_OPS:
                frontier.extend(graph.parents(name))
            else:
                found.append(name)
        parents[node.name] = sorted(found)
    return parents


def _overlap(start_s: float, end_s: float, waits: Sequence[tuple[float, float]]) -> float:
    """Seconds of [start_s, end_s] covered by the (merged) wait intervals."""
    total = 0.0
    cursor = start_s
    for wait_start, wait_end in sorted(waits):
        lo, hi = max(cursor, wait_start), min(end_s, wait_end)
        if hi > lo:
            total += hi - lo
            cursor = hi
    return total


class _Row:
    """One primitive's times while the explanation is assembled."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.node = str(data["node"])
        self.op = str(data["op"])
        self.engine = data["engine"]
        self.ready_s = float(data["ready_s"])
        self.start_s = float(data["start_s"])
        self.end_s = float(data["end_s"])
        self.queue_s = float(data["queue_s"])
        self.service_s = float(data["service_s"])
        self.batch_size = int(data["batch_size"])
        self.is_critical = bool(data["critical"])
        self.core_wait_s = 0.0
        self.solo_s: float | None = None


def latency_path(rows: Mapping[str, _Row], parents: Mapping[str, Sequence[str]]) -> list[str]:
    if not rows:
        return []
    cursor: str | None = max(rows.values(), key=lambda r: (r.end_s, r.node)).node
    path: list[str] = []
    while cursor is not None:
        path.append(cursor)
        ran = [rows[p] for p in parents.get(cursor, ()) if p in rows]
        cursor = max(ran, key=lambda r: (r.end_s, r.node)).node if ran else None
    path.reverse()
    return path


def gap_causes(
    path: Sequence[_Row], latency_s: float, bound_s: float | None
) -> tuple[float | None, list[GapCause]]:
    """The gap (None without a bound) and its causes, which add up to the gap; without
    a bound, to the latency (where it went)."""
    overhead_s = queue_s = core_s = beyond_s = solo_path_s = exec_s = 0.0
    previous_end_s = 0.0
    for row in path:
        ready_s = max(row.ready_s, previous_end_s)
        handed_s = max(row.start_s, ready_s)
        overhead_s += ready_s - previous_end_s
        queue_s += handed_s - ready_s
        execution_s = row.end_s - handed_s
        exec_s += execution_s
        core_s += min(row.core_wait_s, execution_s)
        if row.solo_s is not None:
            solo_path_s += row.solo_s
            beyond_s += execution_s - min(row.core_wait_s, execution_s) - row.solo_s
        previous_end_s = row.end_s
    overhead_s += max(0.0, latency_s - previous_end_s)
    causes = [
        GapCause("runtime overhead", overhead_s, "between primitives on the path and after"),
        GapCause("engine queue", queue_s, "ready, waiting in its engine scheduler's queue"),
        GapCause("waiting for cores", core_s, "inside execution, cores held by other engines"),
    ]
    if bound_s is None:
        causes.append(
            GapCause("execution", exec_s - core_s, "no uncontended reference run to compare")
        )
        return None, causes
    if any(row.solo_s is None for row in path):  # a bound, but no per-primitive times
        causes.append(
            GapCause(
                "execution beyond the bound",
                exec_s - core_s - bound_s,
                "execution on the path less the bound (per-primitive latencies alone unknown)",
            )
        )
        return latency_s - bound_s, causes
    causes.append(
        GapCause("slower than alone", beyond_s, "execution beyond the uncontended latency")
    )
    causes.append(
        GapCause(
            "bound path is heavier",
            solo_path_s - bound_s,
            "the path that ran, uncontended, minus the bound (<= 0)",
        )
    )
    return latency_s - bound_s, causes


def _engine_times(rows: Sequence[_Row], shared: Mapping[str, list[str]]) -> list[EngineTime]:
    by_engine: dict[str, list[_Row]] = {}
    for row in rows:
        by_engine.setdefault(str(row.engine), []).append(row)
    return [
        EngineTime(
            engine,
            len(members),
            round(sum(r.service_s - min(r.core_wait_s, r.service_s) for r in members), 6),
            round(sum(min(r.core_wait_s, r.service_s) for r in members), 6),
            round(sum(r.queue_s for r in members), 6),
            sum(1 for r in members if shared.get(r.node)),
        )
        for engine, members in sorted(by_engine.items())
    ]


def explain_answer(
    answer: Answer,
    *,
    pgraph: Graph | None = None,
    steps: Sequence[PassStep] = (),
    batches: Mapping[str, BatchRecord] | None = None,
    core_waits: Sequence[CoreWait] = (),
    query_start_s: float | None = None,
    notes: Sequence[str] = (),
) -> Explanation:
    """The explanation of a finished query. ``batches``: node -> the batch that ran it
    (``BatchLog.batches_of``); ``core_waits`` and ``query_start_s`` on the budget's
    clock (the same as the loop's), to place the waits in the query's time."""
    rows = {str(d["node"]): _Row(d) for d in answer.timing.to_dicts()}
    honored = answer.honored or answer.graph
    waits: dict[str, list[tuple[float, float]]] = {}
    if query_start_s is not None:
        for wait in core_waits:
            waits.setdefault(wait.engine, []).append(
                (wait.start_s - query_start_s, wait.end_s - query_start_s)
            )
    solo = answer.solo.solo_s if answer.solo is not None else None
    for row in rows.values():
        row.core_wait_s = _overlap(row.start_s, row.end_s, waits.get(str(row.engine), []))
        row.solo_s = solo.get(row.node) if solo is not None else None
    batch_of = dict(batches or {})
    shared = {node: b.other_queries(answer.query_id) for node, b in batch_of.items()}
    path = latency_path(rows, engine_parents(honored))
    gap_s, causes = gap_causes([rows[n] for n in path], answer.latency_s, answer.bound_s)
    on_path = set(path)
    graph = answer.graph
    primitives = [
        PrimitiveView(
            node=r.node,
            op=r.op,
            engine=r.engine,
            ready_s=r.ready_s,
            start_s=r.start_s,
            end_s=r.end_s,
            queue_s=r.queue_s,
            service_s=r.service_s,
            core_wait_s=round(r.core_wait_s, 6),
            solo_s=None if r.solo_s is None else round(r.solo_s, 6),
            batch_id=batch_of[r.node].batch_id if r.node in batch_of else None,
            batch_size=r.batch_size,
            shared_with=shared.get(r.node, []),
            is_critical=r.is_critical,
            is_on_latency_path=r.node in on_path,
            pass_name=graph.node(r.node).provenance.pass_name,
            source=graph.node(r.node).source,
        )
        for r in rows.values()
    ]
    return Explanation(
        app=answer.app,
        scheme=answer.scheme,
        question=answer.question,
        query_id=answer.query_id,
        answer=answer.text,
        latency_s=answer.latency_s,
        lower_s=answer.lower_s,
        optimize_s=answer.optimize_s,
        primitives=primitives,
        critical_path=list(answer.timing.critical_path),
        critical_path_s=answer.timing.bound_s,
        latency_path=path,
        bound_path=answer.solo.path if answer.solo is not None else None,
        engines=_engine_times(list(rows.values()), shared),
        gap=Gap(answer.latency_s, answer.bound_s, gap_s, causes),
        passes=[PassChange(s.pass_name, s.round, s.summary(), s.added, s.removed) for s in steps],
        pgraph=graph_view(pgraph) if pgraph is not None else None,
        egraph=graph_view(graph),
        notes=list(notes),
    )


def explain_run_json(data: Any) -> Explanation:
    """An explanation from one line of ``primflow run --json``: its timings, critical
    path and bound; no graphs, passes, batches or core waits (they are not saved)."""
    if not isinstance(data, dict) or "primitives" not in data or "latency_s" not in data:
        raise ExplainFormatError(
            "not a primflow explanation nor a `primflow run --json` result "
            "(expected the keys 'primitives' and 'latency_s')"
        )
    if "error" in data and "primitives" not in data:
        raise ExplainFormatError(f"that run failed: {data['error']}")
    try:
        rows = {str(d["node"]): _Row(d) for d in data["primitives"]}
        chain = [n for n in data["critical_path"] if n in rows]
        parents = {b: [a] for a, b in itertools.pairwise(chain)}
        path = latency_path({n: rows[n] for n in chain}, parents) if chain else []
        latency_s = float(data["latency_s"])
        bound_s = data.get("bound_s")
        bound_s = None if bound_s is None else float(bound_s)
        gap_s, causes = gap_causes([rows[n] for n in path], latency_s, bound_s)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExplainFormatError(f"bad `primflow run --json` result: {exc!r}") from exc
    on_path = set(path)
    primitives = [
        PrimitiveView(
            r.node,
            r.op,
            r.engine,
            r.ready_s,
            r.start_s,
            r.end_s,
            r.queue_s,
            r.service_s,
            0.0,
            None,
            None,
            r.batch_size,
            [],
            r.is_critical,
            r.node in on_path,
            None,
            r.node,
        )
        for r in rows.values()
    ]
    notes = [
        "from a `primflow run --json` result: it saves no graphs, passes, batches, core "
        "waits or per-primitive uncontended latencies; the latency path is its measured "
        "critical path. `primflow explain APP ... --save FILE` saves all of them."
    ]
    return Explanation(
        app=str(data.get("app", "?")),
        scheme=str(data.get("scheme", "?")),
        question=str(data.get("question", "")),
        query_id=str(data.get("query_id", "?")),
        answer=str(data.get("answer", "")),
        latency_s=latency_s,
        lower_s=float(data.get("lower_s", 0.0)),
        optimize_s=float(data.get("optimize_s", 0.0)),
        primitives=primitives,
        critical_path=list(data["critical_path"]),
        critical_path_s=float(data.get("measured_path_s", 0.0)),
        latency_path=path,
        bound_path=data.get("bound_path"),
        engines=_engine_times(list(rows.values()), {}),
        gap=Gap(latency_s, bound_s, gap_s, causes),
        notes=notes,
    )
