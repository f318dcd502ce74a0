"""``BatchLog``: which batch served each primitive of a query, and who shared it.

A hook that records, for every batch an engine scheduler forms, its engine, instance,
formation time and members (query id, node). ``batches_of(query_id)`` answers, per
engine node of that query, the batch that ran it, so a report can mark the batches
shared with other queries. Records of finished queries are kept for the last
``max_num_queries`` queries only; a running query's are kept until it ends. The cost
is a few dict operations per batch.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from primflow.runtime.hooks import Hook
from primflow.runtime.query_state import QueryResult
from primflow.tracing.ids import QueryIds

if TYPE_CHECKING:
    from primflow.engines.scheduler import Batch
    from primflow.graph.ir import Graph


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One batch: its id (unique per log), engine, instance, formation time (clock
    seconds), size and members as (query id, node); ``None`` for a query no hook saw."""

    batch_id: int
    engine: str
    instance: int
    formed_s: float
    num_items: int
    num_tokens: int
    members: tuple[tuple[str | None, str], ...]

    def other_queries(self, query_id: str) -> list[str]:
        """The other queries this batch served (sorted; ``?`` for unknown ones)."""
        return sorted({q or "?" for q, _ in self.members if q != query_id})

    def to_dict(self) -> dict[str, object]:
        return {
            "batch_id": self.batch_id,
            "engine": self.engine,
            "instance": self.instance,
            "num_requests": len(self.members),
            "num_items": self.num_items,
            "num_tokens": self.num_tokens,
            "members": [[q, n] for q, n in self.members],
        }


class BatchLog(Hook):
    def __init__(self, max_num_queries: int = 256) -> None:
        self.max_num_queries = max_num_queries
        self._ids = QueryIds()
        self._next_id = itertools.count(1)
        self._running: dict[str, dict[str, BatchRecord]] = {}
        self._finished: OrderedDict[str, dict[str, BatchRecord]] = OrderedDict()
        self._started_s: OrderedDict[str, float] = OrderedDict()

    def on_query_start(self, query_id: str, graph: Graph, now_s: float) -> None:
        self._ids.start(query_id)
        self._running[query_id] = {}
        self._started_s[query_id] = now_s
        self._started_s.move_to_end(query_id)
        while len(self._started_s) > self.max_num_queries + len(self._running):
            self._started_s.popitem(last=False)

    def on_batch_formed(self, engine: str, batch: Batch, now_s: float) -> None:
        members = tuple((self._ids.query_of(r.query_id), r.node) for r in batch.requests)
        record = BatchRecord(
            next(self._next_id),
            engine,
            batch.instance,
            now_s,
            batch.num_items,
            batch.num_tokens,
            members,
        )
        for query_id, node in members:
            if query_id is not None and query_id in self._running:
                self._running[query_id][node] = record

    def on_query_done(
        self,
        query_id: str,
        result: QueryResult | None,
        error: BaseException | None,
        now_s: float,
    ) -> None:
        self._ids.end(query_id)
        records = self._running.pop(query_id, None)
        if records is None:
            return
        self._finished[query_id] = records
        while len(self._finished) > self.max_num_queries:
            self._finished.popitem(last=False)

    def started_s(self, query_id: str) -> float | None:
        """When a running or recently finished query started (clock seconds)."""
        return self._started_s.get(query_id)

    def batches_of(self, query_id: str) -> dict[str, BatchRecord]:
        """Node -> the batch that ran it, for a running or recently finished query."""
        records = self._running.get(query_id)
        if records is None:
            records = self._finished.get(query_id, {})
        return dict(records)
