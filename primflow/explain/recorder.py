"""``ExplainRecorder``: what a session must keep to explain its recent queries.

It owns a :class:`~primflow.tracing.BatchLog` hook (pass ``recorder.hooks`` to the
session), reads the stack's core budget for its waits and keeps the last
``max_num_queries`` answers with the waits of their time. ``explanation(query_id)``
builds the explanation on demand (replaying the passes then, not when the query
ends), so recording costs a dict insert per query and a few per batch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from primflow.engines.placement import CoreBudget, CoreWait
from primflow.explain.build import explain_answer
from primflow.explain.model import Explanation
from primflow.explain.passes import PassStep, pass_steps
from primflow.passes.pipeline import GraphPass
from primflow.runtime.hooks import Hook
from primflow.session.session import Answer
from primflow.tracing.batches import BatchLog, BatchRecord


@dataclass(frozen=True, slots=True)
class _Recorded:
    answer: Answer
    batches: dict[str, BatchRecord]
    core_waits: list[CoreWait]
    started_s: float | None


class ExplainRecorder:
    def __init__(
        self,
        budget: CoreBudget | None,
        passes: Sequence[GraphPass],
        max_num_queries: int = 64,
    ) -> None:
        if max_num_queries < 1:
            raise ValueError(f"max_num_queries must be >= 1, got {max_num_queries}")
        self.budget = budget
        self.passes = list(passes)
        self.max_num_queries = max_num_queries
        self.batch_log = BatchLog(max_num_queries=max_num_queries)
        self._recorded: OrderedDict[str, _Recorded] = OrderedDict()

    @property
    def hooks(self) -> list[Hook]:
        return [self.batch_log]

    def record(self, answer: Answer) -> None:
        """Keep ``answer`` (evicting the oldest past ``max_num_queries``)."""
        started_s = self.batch_log.started_s(answer.query_id)
        waits = []
        if self.budget is not None and started_s is not None:
            waits = self.budget.core_waits(since_s=started_s)
        self._recorded[answer.query_id] = _Recorded(
            answer, self.batch_log.batches_of(answer.query_id), waits, started_s
        )
        self._recorded.move_to_end(answer.query_id)
        while len(self._recorded) > self.max_num_queries:
            self._recorded.popitem(last=False)

    def query_ids(self) -> list[str]:
        """The recorded queries, newest first."""
        return list(reversed(self._recorded))

    def explanation(self, query_id: str) -> Explanation | None:
        recorded = self._recorded.get(query_id)
        if recorded is None:
            return None
        answer = recorded.answer
        notes = []
        steps: list[PassStep] = []
        if answer.pgraph is not None and answer.scheme == "primflow":
            steps, replayed = pass_steps(answer.pgraph, self.passes)
            if replayed != answer.graph:
                notes.append("replaying the passes did not end at the graph that ran")
        if answer.solo is None:
            notes.append("no uncontended reference run: the gap to the bound is not known")
        return explain_answer(
            answer,
            pgraph=answer.pgraph,
            steps=steps,
            batches=recorded.batches,
            core_waits=recorded.core_waits,
            query_start_s=recorded.started_s,
            notes=notes,
        )
