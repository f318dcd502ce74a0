"""What a question's run hands back: :class:`Answer` (text, passages, latency, the time
spent lowering and optimizing, the graph that ran and per-primitive timings) and how it
is built from the runtime's :class:`~primflow.runtime.QueryResult`.

Invariants: ``timing`` is measured over ``honored`` (the dependencies the scheme waited
on), so its critical path is the one the scheme could not shorten; ``solo`` (the
uncontended bound) is set only from a ``sequential`` reference of the same question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from primflow.api.dynamic import RoundRecord
from primflow.graph.ir import Graph
from primflow.runtime import QueryResult
from primflow.session.solo_bound import SoloBound, solo_bound
from primflow.session.timing import TimingReport, timing_report
from primflow.values import Hit


@dataclass
class Answer:
    """One answered question: the text, the passages, the latency, the time spent
    lowering and optimizing, the graph that ran and per-primitive timings.

    Examples:
        >>> import asyncio
        >>> from primflow import EngineStack, Session
        >>> from primflow.session import fake_factory
        >>> async def ask(question, documents):
        ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        ...     async with stack, Session(stack) as session:
        ...         return await session.ask("naive_rag", question, documents)
        >>> answer = asyncio.run(ask("How much leave?", ["Employees get 25 days of leave."]))
        >>> answer.app, answer.text
        ('naive_rag', 'Answer ...: a deterministic fake reply.')
        >>> [p.chunk.source for p in answer.passages], answer.latency_s > 0
        (['doc-0'], True)
        >>> answer.timing.critical_path[-1], answer.to_json()["optimize_cache_hit"]
        ('synthesize.decode', False)
    """

    app: str
    scheme: str
    question: str
    query_id: str
    text: str
    passages: list[Hit]
    latency_s: float  # submit to last output, as the runtime measured it
    lower_s: float
    optimize_s: float
    is_cache_hit: bool
    graph: Graph
    timing: TimingReport
    outputs: dict[str, Any] = field(default_factory=dict)
    # The dependencies the scheme waited on (the e-graph for primflow; the module order
    # on top of the p-graph for a baseline), over the nodes of ``graph``.
    honored: Graph | None = None
    num_tokens: dict[str, int] = field(default_factory=dict)  # prompt tokens per prefill phase
    solo: SoloBound | None = None  # set by set_reference
    pgraph: Graph | None = None  # the p-graph as lowered, before the passes (explain)
    # Constrained decisions (decode node -> choice) and the rounds a loop appended.
    decisions: dict[str, str] = field(default_factory=dict)
    rounds: list[RoundRecord] = field(default_factory=list)
    # A calibrated choice's scores (decode node -> answer -> logprob, prior, bias,
    # calibrated): the decision is the answer with the highest calibrated score.
    decision_scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def reoptimize_s(self) -> float:
        """Time spent lowering and optimizing the rounds a loop appended while it ran."""
        return sum(r.lower_s + r.optimize_s for r in self.rounds)

    @property
    def bound_s(self) -> float | None:
        """Critical-path lower bound from uncontended latencies; None without a reference."""
        return self.solo.bound_s if self.solo is not None else None

    @property
    def bound_ratio(self) -> float | None:
        bound_s = self.bound_s
        return self.latency_s / bound_s if bound_s else None

    def set_reference(self, reference: Answer) -> None:
        """Compute :attr:`solo` from ``reference``: the same question (same app and
        settings) run with the ``sequential`` scheme, whose primitives ran alone."""
        if reference.scheme != "sequential":
            raise ValueError(f"the reference must be a sequential run, not {reference.scheme!r}")
        if (reference.app, reference.question) != (self.app, self.question):
            raise ValueError(
                f"the reference answers {reference.app}: {reference.question!r}, "
                f"not {self.app}: {self.question!r}"
            )
        self.solo = solo_bound(
            self.graph,
            self.honored or self.graph,
            reference.graph,
            {p.node: p.service_s for p in reference.timing.primitives},
            {p.node: p.service_s for p in self.timing.primitives},
            self.num_tokens,
        )

    def per_primitive_s(self) -> dict[str, float]:
        return {p.node: round(p.service_s, 6) for p in self.timing.primitives}

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "scheme": self.scheme,
            "question": self.question,
            "answer": self.text,
            "latency_s": round(self.latency_s, 6),
            "bound_s": _rounded(self.bound_s, 6),
            "bound_ratio": _rounded(self.bound_ratio, 4),
            "measured_path_s": round(self.timing.bound_s, 6),
            "lower_s": round(self.lower_s, 6),
            "optimize_s": round(self.optimize_s, 6),
            "optimize_cache_hit": self.is_cache_hit,
            "passages": [
                {"source": h.chunk.source, "chunk_id": h.chunk.chunk_id, "score": h.score}
                for h in self.passages
            ],
            "critical_path": self.timing.critical_path,
            "bound_path": self.solo.path if self.solo is not None else None,
            "primitives": self.timing.to_dicts(),
            "decisions": dict(self.decisions),
            "decision_scores": dict(self.decision_scores),
            "rounds": [r.to_dict() for r in self.rounds],
            "reoptimize_s": round(self.reoptimize_s, 6),
            "reoptimize_share": round(self.reoptimize_s / self.latency_s, 6)
            if self.latency_s > 0
            else 0.0,
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def build_answer(
    app: str,
    scheme: str,
    question: str,
    result: QueryResult,
    graph: Graph,
    honored: Graph,
    lower_s: float,
    optimize_s: float,
    is_cache_hit: bool,
) -> Answer:
    starts = [t.ready_s for t in result.timings.values()]
    query_start_s = min(starts) if starts else 0.0
    text = result.outputs.get("answer")
    hits = result.outputs.get("hits") or []
    return Answer(
        app=app,
        scheme=scheme,
        question=question,
        query_id=result.query_id,
        text=str(text).strip() if text is not None else "",
        passages=[h for h in hits if isinstance(h, Hit)],
        latency_s=result.latency_s,
        lower_s=lower_s,
        optimize_s=optimize_s,
        is_cache_hit=is_cache_hit,
        graph=graph,
        timing=timing_report(honored, result.timings, query_start_s),
        outputs=dict(result.outputs),
        honored=honored,
        decisions=dict(result.decisions),
        decision_scores=dict(result.decision_scores),
    )
