"""Batching policies: which queued requests an engine scheduler puts into the next batch.

A policy owns the order of one engine's queue and nothing else: the scheduler decides
*when* a batch forms and for *which* instance; the policy decides *what* goes in it.
Policies are pure (no clock, no I/O) and cheap per event: pushing is O(log n) at most,
and a batch of b requests costs O(b log n) plus the requests it has to step over.

- ``fifo``: blind batching in arrival order (the paper's strawman).
- ``topology``: the paper's Algorithm 2. Each query's queued primitives form a bucket;
  buckets are visited in the order of their earliest queued arrival; from each bucket
  the highest-depth primitive (longest hop distance to an output) is taken. Buckets
  are visited round-robin, one primitive per bucket per round, so a batch advances
  several queries instead of draining one (Fig. 7: A+G, not A+B).
- ``critical_path``: beyond the paper. Requests run in the order of the key
  ``(query_start_s, -priority)``: the query submitted first goes first, and within a
  query (or among queries submitted at the same instant) the request with the longest
  remaining critical path (``priority``: its upward rank in seconds, from the engines'
  latency profiles, recomputed when nodes are skipped) goes first. Ties go to the
  query seen first on this engine, then to arrival order.

  Why this rule. Inside one query, the longest remaining path is what bounds its
  latency, so its head must not wait behind work with slack (Fig. 7: ``plan`` before
  the side calls). Across queries, ranking by remaining path alone is
  longest-remaining-first: every new query's first step (the largest rank there is)
  overtakes older queries' later steps, so under load all queries progress together
  and all finish late (advanced_rag, cpu, 3 q/s: mean 318 s vs 156 s for fifo).
  Serving queries in submission order finishes the old ones first, which for queries
  of similar size also serves the least remaining work first (what minimises mean
  latency). The key of a request is fixed when it is queued and only queries submitted
  later have larger keys, so no request can be overtaken forever: no starvation, with
  no aging term. Measured on the simulator: docs/results/simulator.md.

Every policy serves the client's query priority first (``query_priority``: higher
first, 0 by default; a server's ``priority`` field): the orders above apply among the
requests of equal query priority. A request's query priority is fixed when it is
queued, so among equal ones the no-starvation arguments above still hold; a stream of
higher-priority queries can delay lower ones indefinitely, which is what asking for a
priority means.

Every policy stops filling a batch at the first request that does not fit the budget,
so no request is overtaken by a smaller one of lower rank (no starvation by size).
Removal is lazy: a removed request stays in the heap and is skipped when reached.

Both tiers use these definitions. The engine scheduler queues requests in a policy and
``select``s batches from it; an engine that forms its own steps from work it already
holds (the LLM's step planner, engines/llm/step_order.py) asks ``policy_order`` for
the order in which the same policy would take that work, given the requests' own
metadata (query id, query start, priority, depth, arrival). ``policy_order`` runs the
policy itself on a fresh queue, so the two tiers cannot drift apart.
"""

from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from primflow.engines.base import EngineRequest

Accepts = Callable[[EngineRequest], bool]


@dataclass(slots=True)
class BatchBudget:
    """How much one batch may hold; the first request is always admitted."""

    max_num_items: int
    max_num_tokens: int
    num_items: int = 0
    num_tokens: int = 0
    requests: list[EngineRequest] = field(default_factory=list)

    def fits(self, request: EngineRequest) -> bool:
        if not self.requests:
            return True
        return (
            self.num_items + request.num_items <= self.max_num_items
            and self.num_tokens + request.num_tokens <= self.max_num_tokens
        )

    def take(self, request: EngineRequest) -> None:
        self.requests.append(request)
        self.num_items += request.num_items
        self.num_tokens += request.num_tokens

    @property
    def is_full(self) -> bool:
        return self.num_items >= self.max_num_items or self.num_tokens >= self.max_num_tokens


class BatchingPolicy(ABC):
    """The order of one engine's queue. ``select`` removes what it returns."""

    name: str = ""

    @abstractmethod
    def push(self, request: EngineRequest) -> None: ...

    @abstractmethod
    def discard(self, request: EngineRequest) -> None:
        """Forget a queued request (its query ended)."""

    @abstractmethod
    def select(self, budget: BatchBudget, accepts: Accepts) -> list[EngineRequest]:
        """Fill ``budget`` with requests that ``accepts`` allows; return them in order."""

    def forget_query(self, query_id: str) -> None:  # noqa: B027 - stateless policies keep this
        """The query ended: drop per-query bookkeeping."""


class FifoPolicy(BatchingPolicy):
    name = "fifo"

    def __init__(self) -> None:
        # One arrival-ordered queue per query priority (almost always just 0).
        self._queues: dict[int, OrderedDict[EngineRequest, None]] = {}

    def push(self, request: EngineRequest) -> None:
        self._queues.setdefault(request.query_priority, OrderedDict())[request] = None

    def discard(self, request: EngineRequest) -> None:
        queue = self._queues.get(request.query_priority)
        if queue is not None:
            queue.pop(request, None)

    def select(self, budget: BatchBudget, accepts: Accepts) -> list[EngineRequest]:
        for level in sorted(self._queues, reverse=True):
            if not self._select_from(self._queues[level], budget, accepts):
                break
        for request in budget.requests:
            del self._queues[request.query_priority][request]
        for level in [k for k, queue in self._queues.items() if not queue]:
            del self._queues[level]
        return budget.requests

    @staticmethod
    def _select_from(
        queue: OrderedDict[EngineRequest, None], budget: BatchBudget, accepts: Accepts
    ) -> bool:
        """Take from ``queue`` in order; False once the batch is full or stopped."""
        for request in queue:
            if budget.is_full:
                return False
            if not accepts(request):
                continue
            if not budget.fits(request):
                return False
            budget.take(request)
        return not budget.is_full


class _Bucket:
    """One query's queued requests on this engine (a handful at a time)."""

    __slots__ = ("earliest_s", "entry_seq", "query_id", "query_priority", "requests")

    def __init__(self, query_id: str, query_priority: int = 0) -> None:
        self.query_id = query_id
        self.query_priority = query_priority
        self.requests: list[EngineRequest] = []
        self.earliest_s = float("inf")
        self.entry_seq = -1  # the seq of this bucket's one live heap entry

    def best(self, accepts: Accepts) -> EngineRequest | None:
        """The highest-depth acceptable request; the earliest arrival breaks ties."""
        best: EngineRequest | None = None
        for request in self.requests:
            if accepts(request) and (best is None or request.depth > best.depth):
                best = request
        return best

    def remove(self, request: EngineRequest) -> None:
        self.requests.remove(request)
        self.earliest_s = min((r.arrival_s for r in self.requests), default=float("inf"))


class TopologyPolicy(BatchingPolicy):
    name = "topology"

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        # (-query_priority, earliest_s, seq, bucket); only the entry whose seq is
        # bucket.entry_seq is live.
        self._heap: list[tuple[int, float, int, _Bucket]] = []
        self._seq = itertools.count()

    def push(self, request: EngineRequest) -> None:
        bucket = self._buckets.get(request.query_id)
        if bucket is None:
            bucket = _Bucket(request.query_id, request.query_priority)
            self._buckets[request.query_id] = bucket
        bucket.requests.append(request)
        if request.arrival_s < bucket.earliest_s:
            bucket.earliest_s = request.arrival_s
            self._enqueue(bucket)

    def discard(self, request: EngineRequest) -> None:
        bucket = self._buckets.get(request.query_id)
        if bucket is not None and request in bucket.requests:
            earliest_s = bucket.earliest_s
            bucket.remove(request)
            if not bucket.requests:
                del self._buckets[bucket.query_id]
            elif bucket.earliest_s != earliest_s:
                self._enqueue(bucket)

    def forget_query(self, query_id: str) -> None:
        self._buckets.pop(query_id, None)

    def select(self, budget: BatchBudget, accepts: Accepts) -> list[EngineRequest]:
        visited: list[_Bucket] = []
        is_stopped = False
        # One query priority at a time, highest first (almost always just 0).
        while not is_stopped and not budget.is_full:
            top = self._peek_bucket()
            if top is None:
                break
            level: list[_Bucket] = []
            is_stopped = self._first_round(top.query_priority, level, budget, accepts)
            visited.extend(level)
            is_stopped = is_stopped or self._later_rounds(level, budget, accepts)
        for bucket in visited:
            if bucket.requests:
                self._enqueue(bucket)
            else:
                del self._buckets[bucket.query_id]
        return budget.requests

    def _first_round(
        self, query_priority: int, level: list[_Bucket], budget: BatchBudget, accepts: Accepts
    ) -> bool:
        """Buckets of ``query_priority`` in order of earliest arrival, one primitive
        each, appended to ``level``; True if the batch stopped (the best did not fit)."""
        while not budget.is_full:
            top = self._peek_bucket()
            if top is None or top.query_priority != query_priority:
                return False
            bucket = self._pop_bucket()
            assert bucket is top
            level.append(bucket)
            if self._take_one(bucket, budget, accepts) is False:
                return True
        return False

    def _later_rounds(self, level: list[_Bucket], budget: BatchBudget, accepts: Accepts) -> bool:
        """Rounds over the same buckets while the batch has room; True if it stopped."""
        is_progressing = True
        while is_progressing and not budget.is_full:
            is_progressing = False
            for bucket in level:
                taken = self._take_one(bucket, budget, accepts)
                if taken is False:
                    return True
                is_progressing = is_progressing or taken is True
                if budget.is_full:
                    break
        return False

    def _take_one(self, bucket: _Bucket, budget: BatchBudget, accepts: Accepts) -> bool | None:
        """True: took one; None: nothing acceptable here; False: the best does not fit."""
        request = bucket.best(accepts)
        if request is None:
            return None
        if not budget.fits(request):
            return False
        budget.take(request)
        bucket.remove(request)
        return True

    def _peek_bucket(self) -> _Bucket | None:
        """The bucket ``_pop_bucket`` would return, left in place (stale tops dropped)."""
        while self._heap:
            _, _, seq, bucket = self._heap[0]
            if seq == bucket.entry_seq and self._buckets.get(bucket.query_id) is bucket:
                return bucket
            heapq.heappop(self._heap)
        return None

    def _pop_bucket(self) -> _Bucket | None:
        while self._heap:
            _, _, seq, bucket = heapq.heappop(self._heap)
            if seq == bucket.entry_seq and self._buckets.get(bucket.query_id) is bucket:
                bucket.entry_seq = -1
                return bucket
        return None

    def _enqueue(self, bucket: _Bucket) -> None:
        """Give the bucket one live heap entry under its current earliest arrival."""
        bucket.entry_seq = next(self._seq)
        heapq.heappush(self._heap, _bucket_entry(bucket))
        if len(self._heap) > 4 * len(self._buckets) + 64:
            # Too many stale entries: rebuild from the live buckets.
            self._heap = [_bucket_entry(b) for b in self._buckets.values() if b.entry_seq >= 0]
            heapq.heapify(self._heap)


def _bucket_entry(bucket: _Bucket) -> tuple[int, float, int, _Bucket]:
    return (-bucket.query_priority, bucket.earliest_s, bucket.entry_seq, bucket)


class CriticalPathPolicy(BatchingPolicy):
    name = "critical_path"

    def __init__(self) -> None:
        self._heap: list[tuple[int, float, float, int, int, EngineRequest]] = []
        self._live: set[EngineRequest] = set()
        self._query_order: dict[str, int] = {}
        self._seq = itertools.count()

    def push(self, request: EngineRequest) -> None:
        query_order = self._query_order.setdefault(request.query_id, len(self._query_order))
        start_s = request.query_start_s if request.query_start_s is not None else request.arrival_s
        key = (-request.query_priority, start_s, -request.priority, query_order)
        entry = (*key, next(self._seq), request)
        heapq.heappush(self._heap, entry)
        self._live.add(request)

    def discard(self, request: EngineRequest) -> None:
        self._live.discard(request)

    def forget_query(self, query_id: str) -> None:
        self._query_order.pop(query_id, None)

    def select(self, budget: BatchBudget, accepts: Accepts) -> list[EngineRequest]:
        skipped: list[tuple[int, float, float, int, int, EngineRequest]] = []
        while self._heap and not budget.is_full:
            request = self._heap[0][-1]
            if request not in self._live:
                heapq.heappop(self._heap)
            elif not accepts(request):
                skipped.append(heapq.heappop(self._heap))
            elif budget.fits(request):
                heapq.heappop(self._heap)
                self._live.discard(request)
                budget.take(request)
            else:
                break
        for entry in skipped:
            heapq.heappush(self._heap, entry)
        return budget.requests


POLICIES: dict[str, type[BatchingPolicy]] = {
    cls.name: cls for cls in (FifoPolicy, TopologyPolicy, CriticalPathPolicy)
}


def policy_order(name: str, requests: Iterable[EngineRequest]) -> list[EngineRequest]:
    """``requests`` in the order policy ``name`` would batch them with no budget limit.

    They are queued in arrival order (``arrival_s``, then the order given), as the
    engine scheduler queues them, and selected into one unbounded batch.
    """
    policy = make_policy(name)
    queued = sorted(requests, key=lambda r: r.arrival_s)  # stable: ties keep their order
    for request in queued:
        policy.push(request)
    budget = BatchBudget(max_num_items=_UNBOUNDED, max_num_tokens=_UNBOUNDED)
    return policy.select(budget, _accept_all)


_UNBOUNDED = 2**62


def _accept_all(request: EngineRequest) -> bool:
    return True


def make_policy(name: str) -> BatchingPolicy:
    try:
        return POLICIES[name]()
    except KeyError:
        known = ", ".join(POLICIES)
        raise ValueError(f"unknown batching policy {name!r} (known: {known})") from None
