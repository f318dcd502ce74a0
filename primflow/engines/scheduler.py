"""The engine scheduler: one per named engine, forming batches for its instances.

A small synchronous class with no I/O and no clock: time is passed in. The worker
(``runtime/worker.py``) calls ``add`` when a primitive is ready, ``schedule`` when
something changed, ``update`` when a batch finished, ``remove_query`` when a query
ends, and arms a timer at ``next_wakeup_s``.

Invariants:

- A request is in exactly one place: queued here, or in one batch in flight.
- Each instance runs at most ``max_concurrent_batches`` batches at once; a batch is
  formed only when an instance has a free slot, so queued work waits here (where the
  policy can order it), not inside the engine.
- A batch holds at most ``max_num_items`` work items and ``max_num_tokens`` tokens
  (from the engine profile), except that a single request always fits.
- Phases of one LLM call (same ``llm_request_id``) run on the same instance, since
  that instance holds the call's KV state.
- Instances are balanced by load: the free instance with the fewest requests in
  flight, or for LLM engines the lowest reported load (KV occupancy).
- An instance the caller reports unavailable (a dead actor being restarted) gets no new
  batch while another instance is available; with none available, work goes to them
  all as usual (a restarting instance takes it once it is back).

The max-wait rule. A batch that is not full is held while more requests may arrive
soon, for at most ``max_wait_ms`` after its oldest request. It is formed at once when
(a) the queued work already fills a batch, or (b) the oldest request has waited
``max_wait_ms``, or (c) the caller says nothing else can arrive soon
(``is_more_expected=False``): the runtime passes that when no request is in flight
anywhere but this queue, so a lone query never pays the wait, or (d) the engine runs
several batches at once (``max_concurrent_batches > 1``, continuous batching): such an
engine fuses work at its own step boundary, so holding would only add latency.

Such an engine (the LLM) gets every request as soon as it is ready and orders the work
into steps itself; each request names this scheduler's policy (``request.policy``) and
the engine's step planner orders its steps by that same policy (policies.py), so the
policy decides the LLM's steps, not the moment a request is handed over.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from primflow.engines.base import EngineRequest
from primflow.engines.policies import Accepts, BatchBudget, BatchingPolicy, make_policy
from primflow.engines.profile import LatencyProfile


@dataclass(eq=False, slots=True)
class Batch:
    """Requests sent to one instance in one ``Engine.submit`` call."""

    requests: list[EngineRequest]
    instance: int
    formed_s: float
    num_items: int
    num_tokens: int
    # Requests whose futures have not resolved yet; the worker counts them down.
    num_unfinished: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_unfinished = len(self.requests)

    def __len__(self) -> int:
        return len(self.requests)


class EngineScheduler:
    def __init__(
        self,
        name: str,
        profile: LatencyProfile,
        *,
        policy: str | BatchingPolicy = "topology",
        num_instances: int = 1,
        max_concurrent_batches: int = 1,
        max_wait_ms: float = 2.0,
        max_num_items: int | None = None,
    ) -> None:
        if num_instances < 1:
            raise ValueError(f"engine {name!r} needs at least one instance")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0 for engine {name!r}, got {max_wait_ms}")
        self.name = name
        self.policy = make_policy(policy) if isinstance(policy, str) else policy
        self.num_instances = num_instances
        self.max_concurrent_batches = max_concurrent_batches
        self.max_wait_s = max_wait_ms / 1000
        self.max_num_items = max_num_items or profile.max_batch_size
        self.max_num_tokens = profile.max_batch_tokens
        # Arrival order of everything queued: the oldest request starts the wait clock.
        self._queued: OrderedDict[EngineRequest, None] = OrderedDict()
        self._queued_by_query: dict[str, list[EngineRequest]] = {}
        self._num_queued_items = 0
        self._num_queued_tokens = 0
        self._num_batches = [0] * num_instances
        self._num_requests = [0] * num_instances
        self._instance_of_call: dict[str, int] = {}
        self._calls_by_query: dict[str, list[str]] = {}
        self._is_stalled = False

    # -- the contract -------------------------------------------------------------
    def add(self, request: EngineRequest, now_s: float) -> None:
        request.arrival_s = now_s
        request.policy = self.policy.name  # the engine's own step order follows it too
        self._queued[request] = None
        self._queued_by_query.setdefault(request.query_id, []).append(request)
        self._num_queued_items += request.num_items
        self._num_queued_tokens += request.num_tokens
        self.policy.push(request)

    def schedule(
        self,
        now_s: float,
        *,
        loads: Sequence[float] | None = None,
        is_more_expected: bool = True,
        unavailable: Collection[int] = (),
    ) -> list[Batch]:
        """Form one batch per free instance slot, as far as the max-wait rule allows.
        ``unavailable`` instances get none while another instance is available."""
        batches: list[Batch] = []
        self._is_stalled = False
        if len(unavailable) >= self.num_instances:
            unavailable = ()
        while self._queued and self._is_batch_due(now_s, is_more_expected):
            batch = self._form_batch(now_s, loads, unavailable)
            if batch is None:
                # Due, but every queued request is pinned to a busy instance: only a
                # completion can help, so no timer (it would fire in a busy loop).
                self._is_stalled = True
                break
            batches.append(batch)
        return batches

    def update(self, batch: Batch, now_s: float) -> None:
        """The batch finished (every future resolved): free its slot."""
        self._num_batches[batch.instance] -= 1
        self._num_requests[batch.instance] -= len(batch.requests)

    def remove_query(self, query_id: str) -> list[EngineRequest]:
        """Drop the query's queued requests (returned) and its instance pins."""
        dropped = self._queued_by_query.pop(query_id, [])
        for request in dropped:
            del self._queued[request]
            self._num_queued_items -= request.num_items
            self._num_queued_tokens -= request.num_tokens
            self.policy.discard(request)
        self.policy.forget_query(query_id)
        for call_id in self._calls_by_query.pop(query_id, []):
            self._instance_of_call.pop(call_id, None)
        return dropped

    def next_wakeup_s(self) -> float | None:
        """When a held batch becomes due; None when nothing waits on the clock."""
        if not self._queued or not self._has_free_slot() or self._is_stalled:
            return None
        oldest = next(iter(self._queued))
        return oldest.arrival_s + self.max_wait_s

    # -- state --------------------------------------------------------------------
    @property
    def num_queued(self) -> int:
        return len(self._queued)

    @property
    def num_running(self) -> int:
        return sum(self._num_requests)

    def queued(self) -> list[EngineRequest]:
        return list(self._queued)

    # -- internals ----------------------------------------------------------------
    def _is_batch_due(self, now_s: float, is_more_expected: bool) -> bool:
        if not self._has_free_slot():
            return False
        if not is_more_expected or self.max_concurrent_batches > 1:
            return True
        if self._num_queued_items >= self.max_num_items:
            return True
        if self._num_queued_tokens >= self.max_num_tokens:
            return True
        oldest = next(iter(self._queued))
        # A tiny slack so a timer set for exactly the due time counts as due.
        return now_s + 1e-9 >= oldest.arrival_s + self.max_wait_s

    def _has_free_slot(self) -> bool:
        return min(self._num_batches) < self.max_concurrent_batches

    def _form_batch(
        self, now_s: float, loads: Sequence[float] | None, unavailable: Collection[int]
    ) -> Batch | None:
        for instance in self._free_instances(loads):
            if instance in unavailable:
                continue
            budget = BatchBudget(self.max_num_items, self.max_num_tokens)
            requests = self.policy.select(budget, self._accepts_for(instance))
            if requests:
                return self._start(requests, instance, now_s, budget)
        return None

    def _free_instances(self, loads: Sequence[float] | None) -> list[int]:
        limit = self.max_concurrent_batches
        free = [i for i in range(self.num_instances) if self._num_batches[i] < limit]
        if len(free) > 1:
            if loads is not None:
                free.sort(key=lambda i: (loads[i], self._num_requests[i]))
            else:
                free.sort(key=self._num_requests.__getitem__)
        return free

    def _accepts_for(self, instance: int) -> Accepts:
        if self.num_instances == 1:
            return _accept_all
        pins = self._instance_of_call

        def accepts(request: EngineRequest) -> bool:
            call_id = request.llm_request_id
            return call_id is None or pins.get(call_id, instance) == instance

        return accepts

    def _start(
        self, requests: list[EngineRequest], instance: int, now_s: float, budget: BatchBudget
    ) -> Batch:
        for request in requests:
            del self._queued[request]
            queued = self._queued_by_query[request.query_id]
            queued.remove(request)
            if not queued:
                del self._queued_by_query[request.query_id]
            if self.num_instances > 1 and request.llm_request_id is not None:
                self._pin(request, instance)
        self._num_queued_items -= budget.num_items
        self._num_queued_tokens -= budget.num_tokens
        self._num_batches[instance] += 1
        self._num_requests[instance] += len(requests)
        return Batch(requests, instance, now_s, budget.num_items, budget.num_tokens)

    def _pin(self, request: EngineRequest, instance: int) -> None:
        call_id = request.llm_request_id
        assert call_id is not None
        if call_id not in self._instance_of_call:
            self._instance_of_call[call_id] = instance
            self._calls_by_query.setdefault(request.query_id, []).append(call_id)


def _accept_all(request: EngineRequest) -> bool:
    return True
