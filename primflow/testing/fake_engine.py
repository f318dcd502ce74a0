"""The shared machinery of the fake engines (``primflow.testing.fakes``).

``FakeEngine`` implements the engine contract (``engines/base.py``) for scheduling
tests and the simulator; subclasses only say what a request computes (``compute``)
and, for the LLM, how requests are served (``_launch``). Latency comes from the
engine's ``LatencyProfile``: each batch sleeps ``latency_scale * profile.latency_s(...)``
with ``asyncio.sleep``, so a virtual-time loop runs them in simulated time.

Test knobs, all per node name: ``fail_on(node)`` fails that node's requests with an
``EngineError``; ``block(node)`` returns an ``asyncio.Event`` that holds the node's
requests in flight until it is set (``entered(node)`` is set once one is held, like
Ray's SignalActor); ``set_response(node, text)`` fixes an LLM decode's text. (The fake
LLM's ``set_items(request, items)`` fixes the items of one LLM call's structured decode.)
Records: ``batches`` (every submitted batch, in order), ``aborted`` and ``released``
(query ids, in call order).

Invariants: every task a fake starts is tracked; ``abort`` cancels the query's futures
and any task that only served them; ``close`` cancels all. Per-query state
(collections, LLM calls) is freed by ``release`` and ``abort``; work for a query that
already ended is refused with an ``EngineError``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from primflow.engines.base import Engine, EngineError, EngineHealth, EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile

# Closed query ids are remembered to refuse late work; the oldest are forgotten.
MAX_NUM_CLOSED_QUERIES = 10_000

T = TypeVar("T")


class FakeEngine(Engine):
    """Shared machinery: batch recording, latency, knobs, per-query cleanup."""

    def __init__(
        self,
        name: str,
        profile: LatencyProfile | None = None,
        *,
        latency_scale: float = 1.0,
        max_concurrent_batches: int = 1,
    ) -> None:
        super().__init__(name, profile)
        self.latency_scale = latency_scale
        self._max_concurrent_batches = max_concurrent_batches
        self.batches: list[list[EngineRequest]] = []
        self.aborted: list[str] = []
        self.released: list[str] = []
        self._failing: dict[tuple[str | None, str], str] = {}
        self._gates: dict[tuple[str | None, str], asyncio.Event] = {}
        self._entered: dict[tuple[str | None, str], asyncio.Event] = {}
        self._responses: dict[str, str] = {}
        self._tasks: dict[asyncio.Task[None], list[asyncio.Future[Outputs]]] = {}
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._closed_queries: dict[str, None] = {}
        self._num_running = 0
        # Seconds this engine spent serving (summed over batches that overlap).
        self.busy_s = 0.0
        # How a batch's latency passes; the simulator may share cores between engines.
        self.delay: Callable[[float], Awaitable[None]] = asyncio.sleep

    # -- knobs (``query_id=None`` applies to every query) ---------------------------
    def fail_on(
        self, node: str, reason: str = "injected failure", query_id: str | None = None
    ) -> None:
        self._failing[(query_id, node)] = reason

    def block(self, node: str, query_id: str | None = None) -> asyncio.Event:
        """Hold ``node``'s requests in flight until the returned event is set."""
        return self._gates.setdefault((query_id, node), asyncio.Event())

    def entered(self, node: str, query_id: str | None = None) -> asyncio.Event:
        """Set once a request of ``node`` is held by ``block``."""
        return self._entered.setdefault((query_id, node), asyncio.Event())

    def set_response(self, node: str, text: str) -> None:
        self._responses[node] = text

    def _knob(self, knobs: dict[tuple[str | None, str], T], request: EngineRequest) -> T | None:
        found = knobs.get((request.query_id, request.node))
        return found if found is not None else knobs.get((None, request.node))

    @property
    def max_concurrent_batches(self) -> int:
        return self._max_concurrent_batches

    @property
    def batch_keys(self) -> list[list[tuple[str, str]]]:
        """Every batch as (query id, node) pairs: for asserting fusion and order."""
        return [[(r.query_id, r.node) for r in batch] for batch in self.batches]

    @property
    def num_tracked_tasks(self) -> int:
        return len(self._tasks)

    @property
    def num_queries_with_state(self) -> int:
        return len(self._futures_by_query)

    # -- the contract -------------------------------------------------------------
    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        requests = list(batch)
        self.batches.append(requests)
        futures: list[asyncio.Future[Outputs]] = [loop.create_future() for _ in requests]
        for request, future in zip(requests, futures, strict=True):
            if request.query_id in self._closed_queries:
                reason = f"query {request.query_id!r} already ended"
                future.set_exception(EngineError(self.name, request.node, reason))
                continue
            self._track_future(request.query_id, future)
        self._launch(requests, futures)
        return futures

    def abort(self, query_id: str) -> None:
        self.aborted.append(query_id)
        for future in self._futures_by_query.pop(query_id, set()):
            future.cancel()
        for task, futures in list(self._tasks.items()):
            if all(f.done() for f in futures):
                task.cancel()
        self._close_query(query_id)

    def release(self, query_id: str) -> None:
        self.released.append(query_id)
        self._futures_by_query.pop(query_id, None)
        self._close_query(query_id)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def health(self) -> EngineHealth:
        return EngineHealth(
            is_healthy=True,
            num_running=self._num_running,
            load=float(self._num_running),
        )

    # -- serving ------------------------------------------------------------------
    def _launch(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> None:
        """One task per batch: the whole batch takes one profile latency."""
        self._start_task(self._serve(requests, futures), futures)

    async def _serve(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> None:
        self._num_running += len(requests)
        try:
            latency_s = self.latency_scale * self.batch_latency_s(requests)
            self.busy_s += latency_s
            await self.delay(latency_s)
            for request, future in zip(requests, futures, strict=True):
                await self._finish(request, future)
        finally:
            self._num_running -= len(requests)

    async def _finish(self, request: EngineRequest, future: asyncio.Future[Outputs]) -> None:
        """Resolve one request, honouring its gate without holding up the rest."""
        if future.done():
            return
        gate = self._knob(self._gates, request)
        if gate is not None and not gate.is_set():
            self._start_task(self._finish_after(gate, request, future), [future])
            return
        self._resolve(request, future)

    async def _finish_after(
        self, gate: asyncio.Event, request: EngineRequest, future: asyncio.Future[Outputs]
    ) -> None:
        self.entered(request.node).set()
        self.entered(request.node, request.query_id).set()
        await gate.wait()
        if not future.done():
            self._resolve(request, future)

    def _resolve(self, request: EngineRequest, future: asyncio.Future[Outputs]) -> None:
        failure = self._knob(self._failing, request)
        if failure is not None:
            future.set_exception(EngineError(self.name, request.node, failure))
            return
        try:
            outputs = self.compute(request)
        except Exception as exc:  # a bad request fails only itself
            future.set_exception(EngineError(self.name, request.node, repr(exc)))
            return
        future.set_result(outputs)

    def batch_latency_s(self, requests: Sequence[EngineRequest]) -> float:
        num_items = sum(r.num_items for r in requests)
        num_tokens = sum(r.num_tokens for r in requests)
        return self.profile.latency_s(num_items, num_tokens)

    def compute(self, request: EngineRequest) -> Outputs:
        raise EngineError(self.name, request.node, f"{type(self).__name__} cannot run {request.op}")

    # -- bookkeeping --------------------------------------------------------------
    def _start_task(self, coro: Any, futures: list[asyncio.Future[Outputs]]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[task] = futures
        task.add_done_callback(self._tasks.pop)

    def _track_future(self, query_id: str, future: asyncio.Future[Outputs]) -> None:
        live = self._futures_by_query.setdefault(query_id, set())
        live.add(future)
        future.add_done_callback(live.discard)

    def _close_query(self, query_id: str) -> None:
        self._closed_queries[query_id] = None
        if len(self._closed_queries) > MAX_NUM_CLOSED_QUERIES:
            del self._closed_queries[next(iter(self._closed_queries))]
        self.free_query(query_id)

    def free_query(self, query_id: str) -> None:
        """Drop per-query state; subclasses with state override."""


def digest(text: str) -> int:
    """A stable 64-bit hash of ``text`` (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
