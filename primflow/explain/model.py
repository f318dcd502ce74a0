"""The explanation of one query's latency, as data: what the text and the page show.

An ``Explanation`` is plain data (JSON in and out, ``FORMAT`` names the version), so
``primflow explain --from-json`` renders a saved one exactly like a live one. Times
are seconds from the query's start. Invariants:

- ``gap.causes`` add up to ``gap.gap_s`` = latency - bound (``build.py`` splits the
  measured latency path into them).
- ``primitives`` are the engine primitives that ran, in start order; each names the
  batch that ran it and the other queries that batch served.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = "primflow.explain/1"


class ExplainFormatError(ValueError):
    """A saved explanation (or run result) cannot be read; says what is wrong."""


@dataclass(frozen=True, slots=True)
class GraphView:
    """A graph as the page draws it: nodes (name, op, engine, pass, source) and edges."""

    nodes: list[dict[str, Any]]
    edges: list[tuple[str, str, str]]  # (src, dst, kind)


@dataclass(frozen=True, slots=True)
class PrimitiveView:
    node: str
    op: str
    engine: str | None
    ready_s: float
    start_s: float
    end_s: float
    queue_s: float
    service_s: float
    core_wait_s: float
    solo_s: float | None
    batch_id: int | None
    batch_size: int
    shared_with: list[str]  # other queries its batch served
    is_critical: bool  # on the measured critical path
    is_on_latency_path: bool
    pass_name: str | None
    source: str


@dataclass(frozen=True, slots=True)
class EngineTime:
    """One engine's time on this query's primitives (sums over them, seconds)."""

    engine: str
    num_primitives: int
    busy_s: float  # running: service time less the waits for cores
    core_wait_s: float  # inside service time, waiting for cores held by other engines
    queue_s: float  # ready, not yet handed to the engine (its scheduler's queue)
    num_shared_batches: int


@dataclass(frozen=True, slots=True)
class GapCause:
    cause: str
    seconds: float
    detail: str


@dataclass(frozen=True, slots=True)
class Gap:
    latency_s: float
    bound_s: float | None  # uncontended critical path; None without a reference run
    gap_s: float | None
    causes: list[GapCause]


@dataclass(frozen=True, slots=True)
class PassChange:
    pass_name: str
    round: int
    summary: str
    added: list[str]
    removed: list[str]


@dataclass(frozen=True, slots=True)
class Explanation:
    app: str
    scheme: str
    question: str
    query_id: str
    answer: str
    latency_s: float
    lower_s: float
    optimize_s: float
    primitives: list[PrimitiveView]
    critical_path: list[str]  # measured service times
    critical_path_s: float
    latency_path: list[str]  # what each primitive on the way to the end waited for
    bound_path: list[str] | None
    engines: list[EngineTime]
    gap: Gap
    passes: list[PassChange] = field(default_factory=list)
    pgraph: GraphView | None = None
    egraph: GraphView | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @staticmethod
    def from_json(data: Any) -> Explanation:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ExplainFormatError(f"not a {FORMAT} explanation")
        try:
            return _explanation(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExplainFormatError(f"bad {FORMAT} explanation: {exc!r}") from exc


def _explanation(data: dict[str, Any]) -> Explanation:
    gap = data["gap"]

    def graph(view: Any) -> GraphView | None:
        if view is None:
            return None
        return GraphView(list(view["nodes"]), [(e[0], e[1], e[2]) for e in view["edges"]])

    return Explanation(
        app=str(data["app"]),
        scheme=str(data["scheme"]),
        question=str(data["question"]),
        query_id=str(data["query_id"]),
        answer=str(data["answer"]),
        latency_s=float(data["latency_s"]),
        lower_s=float(data["lower_s"]),
        optimize_s=float(data["optimize_s"]),
        primitives=[PrimitiveView(**p) for p in data["primitives"]],
        critical_path=list(data["critical_path"]),
        critical_path_s=float(data["critical_path_s"]),
        latency_path=list(data["latency_path"]),
        bound_path=data["bound_path"],
        engines=[EngineTime(**e) for e in data["engines"]],
        gap=Gap(
            float(gap["latency_s"]),
            gap["bound_s"],
            gap["gap_s"],
            [GapCause(**c) for c in gap["causes"]],
        ),
        passes=[PassChange(**p) for p in data.get("passes", [])],
        pgraph=graph(data.get("pgraph")),
        egraph=graph(data.get("egraph")),
        notes=list(data.get("notes", [])),
    )
