"""Base for engines whose work is synchronous CPU or blocking I/O: one worker thread each.

Owns the hand-off between the event loop and an engine's thread. Invariants:

- ``submit`` returns at once; batches run in submission order on one dedicated OS
  thread (never the event loop, and always the same thread, so libraries with
  per-thread state such as OpenMP teams or DB connections see one caller).
- ``run_batch`` returns one outcome per request; an exception outcome fails only that
  request's future, as an :class:`EngineError` naming the engine and the node.
- ``abort(query_id)`` cancels that query's futures at once; its requests still queued
  are skipped when their batch starts. ``release``/``abort`` call ``free_query`` and
  remember the query as closed, so late work for it is refused.
- Abort of a running batch: the unit running when the abort comes (one ONNX sub-batch,
  which cannot be interrupted) finishes and holds its ``lease_threads`` lease to its
  end. Once every request of the batch belongs to an ended query, the next
  ``lease_threads`` call raises :class:`BatchAbandoned` instead of leasing: the batch
  stops at that unit boundary, its requests fail with "its query has ended", the
  engine leaves the budget (``end``), and only then does the next batch start (one
  batch at a time on the engine thread). So an aborted batch frees the cores within
  one unit, before the next batch starts. A batch that also serves a live query runs
  to its end (its texts are shared).
- While a batch is queued or running the engine counts as busy in its ``CoreBudget``
  (so a deferrable engine with speculative work, the LLM, waits while this one runs).
- Inline batches: a batch the engine says is cheaper than the hop to its thread and back
  (``runs_inline``, e.g. a FAISS search of one vector: tens of microseconds against
  ~0.1 ms per hop) runs on the caller's thread inside ``submit`` when nothing is queued
  or running on the engine thread, so batches still run one at a time in submission
  order; its futures are resolved when ``submit`` returns. Nothing can end a query
  meanwhile, so an inline batch skips the thread path's bookkeeping (abort registry,
  queue counters, and the core budget's unless it counts the engine), which cost
  25-47 us per submit; requests of ended queries are refused alike. Such an engine sends any other
  work to its thread through ``on_engine_thread``, which the idle check counts.
- A batch of one request (a query's ingest or search) may take one fused step instead:
  ``run_one_inline`` decides whether it runs inline and runs it, with every check of
  the general path, where the core budget does not count the engine; no intermediate
  lists, and its future is resolved directly. A larger batch may likewise take
  ``run_many_inline`` (e.g. concurrent searches of one collection), which gives one
  outcome per request, refusing each request of an ended query alone.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from primflow.engines.base import Engine, EngineError, EngineHealth, EngineRequest, Outputs
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile

Outcome = Outputs | BaseException
Resolution = tuple[EngineRequest, "asyncio.Future[Outputs]", Outcome]
T = TypeVar("T")


class BatchAbandoned(Exception):
    """Raised by ``lease_threads`` when every query of the running batch has ended."""


# Closed query ids are remembered to refuse late work; old ones are forgotten.
MAX_NUM_CLOSED_QUERIES = 10_000


class ThreadedEngine(Engine):
    """An engine whose work is synchronous: subclasses implement :meth:`run_batch`,
    which runs on the engine's own thread (see the module docstring).

    ``run_batch`` returns one outcome per request: its outputs, or an exception that
    fails that request alone. docs/guide/extending.md builds a real one (an embedder).

    Examples:
        >>> import asyncio
        >>> from primflow import EngineKind, EngineRequest, Op, ThreadedEngine
        >>> class LengthEmbedder(ThreadedEngine):
        ...     kind = EngineKind.EMBEDDER
        ...     def run_batch(self, batch):
        ...         lengths = [[[float(len(t))] for t in r.inputs["items"]] for r in batch]
        ...         return [{"vectors": rows} for rows in lengths]
        >>> async def main():
        ...     engine = LengthEmbedder("embedder")
        ...     request = EngineRequest("q0", "embed", Op.EMBED, {"items": ["ab", "abc"]}, {})
        ...     try:
        ...         (future,) = engine.submit([request])
        ...         return await future
        ...     finally:
        ...         await engine.close()
        >>> asyncio.run(main())
        {'vectors': [[2.0], [3.0]]}
    """

    def __init__(
        self,
        name: str,
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
    ) -> None:
        super().__init__(name, profile)
        self.budget = budget
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{name}")
        self._lock = threading.Lock()
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._closed_queries: OrderedDict[str, None] = OrderedDict()
        self._num_queued = 0
        self._num_running = 0
        self._num_thread_jobs = 0  # submitted to the engine thread and not finished
        self._running_query_ids: frozenset[str] = frozenset()  # engine thread only

    @abstractmethod
    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        """Run the requests on the engine thread; one outcome per request, in order."""

    def runs_inline(self, batch: Sequence[EngineRequest]) -> bool:
        """True when ``batch`` costs less than the hop to the engine thread and back, and
        ``run_batch`` may run it on the caller's (event loop) thread: only for work of
        tens of microseconds that starts no thread pool (see the module docstring).
        Never, by default."""
        return False

    async def on_engine_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the engine thread, after the batches submitted before it (an
        engine whose ``runs_inline`` says yes must use this for any other thread work)."""
        loop = asyncio.get_running_loop()

        def job() -> T:
            try:
                return fn()
            finally:
                loop.call_soon_threadsafe(self._thread_job_done)

        future = loop.run_in_executor(self._executor, job)
        self._num_thread_jobs += 1  # its end is posted to this thread, so it comes later
        return await future

    def free_query(self, query_id: str) -> None:
        """Free the query's state. Called on the loop thread by release and abort."""

    def threads(self) -> int:
        """Threads for the next batch (or sub-batch), from the core budget."""
        if self.budget is None:
            return 0  # 0 = let the library decide
        return self.budget.threads_for(self.name)

    def lease_threads(self) -> AbstractContextManager[int]:
        """Threads for one batch or sub-batch, held until it ends (``CoreBudget.lease``).

        Raises :class:`BatchAbandoned` when every query of the running batch has ended
        (see the module docstring): the caller stops the batch there.
        """
        if self._running_query_ids and all(map(self.is_closed, self._running_query_ids)):
            raise BatchAbandoned(f"{self.name}: every query of the running batch has ended")
        if self.budget is None:
            return nullcontext(0)  # 0 = let the library decide
        return self.budget.lease(self.name)

    def is_closed(self, query_id: str) -> bool:
        # One lookup is atomic under the GIL (the lock orders the writers), and this runs
        # two or three times per request.
        return query_id in self._closed_queries

    def run_one_inline(self, request: EngineRequest) -> Outcome | None:
        """The outcome of ``request`` run alone on the caller's thread, or None, before
        doing anything, when it does not run inline (``submit`` then takes the general
        path). The fused form of ``runs_inline`` + ``run_batch`` for a batch of one: it
        must refuse a request of an ended query (:meth:`refused`) and give what
        ``run_batch`` would. Called only when the engine thread is idle and the core
        budget does not count this engine. Never, by default."""
        return None

    def run_many_inline(self, batch: Sequence[EngineRequest]) -> list[Outcome] | None:
        """The outcomes of a batch of several requests run on the caller's thread in one
        fused step, or None, before doing anything, when it does not run so (``submit``
        then takes the general path). As :meth:`run_one_inline`, for each request: an
        ended query's is refused (:meth:`refused`), the others get what ``run_batch``
        would give. Called under the same conditions. Never, by default."""
        return None

    def refused(self, request: EngineRequest) -> EngineError:
        """The error of a request whose query has ended."""
        return EngineError(self.name, request.node, "its query has ended")

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        # Read on the loop thread, the only one that adds engine-thread jobs: when it is
        # 0 the engine thread is idle and stays so while this batch runs here.
        if self._num_thread_jobs == 0:
            if self.budget is None or not self.budget.counts(self.name):
                if len(batch) == 1:
                    request = batch[0]
                    outcome = self.run_one_inline(request)
                    if outcome is not None:
                        future: asyncio.Future[Outputs] = loop.create_future()
                        request.future = future
                        self._resolve(request, future, outcome)
                        return [future]
                elif (outcomes := self.run_many_inline(batch)) is not None:
                    return self._resolved(loop, batch, outcomes)
            requests = list(batch)
            if self.runs_inline(requests):
                return self._submit_inline(loop, requests)
        else:
            requests = list(batch)
        futures: list[asyncio.Future[Outputs]] = [loop.create_future() for _ in requests]
        for request, future in zip(requests, futures, strict=True):
            request.future = future
            self._futures_by_query.setdefault(request.query_id, set()).add(future)
            future.add_done_callback(self._forget(request.query_id))
        with self._lock:
            self._num_queued += len(requests)
        if self.budget is not None:
            self.budget.begin(self.name)
        self._executor.submit(self._run_on_thread, loop, requests, futures)
        self._num_thread_jobs += 1  # its end is posted to this thread, so it comes later
        return futures

    def _resolved(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: Sequence[EngineRequest],
        outcomes: list[Outcome],
    ) -> list[asyncio.Future[Outputs]]:
        """Futures already resolved with ``outcomes`` (``run_many_inline``'s)."""
        if len(outcomes) != len(batch):
            reason = f"run_many_inline gave {len(outcomes)} outcomes for {len(batch)} requests"
            outcomes = [RuntimeError(reason)] * len(batch)
        futures: list[asyncio.Future[Outputs]] = []
        for request, outcome in zip(batch, outcomes, strict=True):
            future: asyncio.Future[Outputs] = loop.create_future()
            request.future = future
            self._resolve(request, future, outcome)
            futures.append(future)
        return futures

    def _submit_inline(
        self, loop: asyncio.AbstractEventLoop, requests: list[EngineRequest]
    ) -> list[asyncio.Future[Outputs]]:
        """Run an inline batch here; its futures are resolved when this returns.

        Nothing can end a query while the batch runs (it runs on the loop thread, which
        is where ``abort`` and ``release`` are called), so the thread path's bookkeeping
        is left out: the futures are not registered for ``abort`` (they are done before
        anyone could cancel them), the queue counters never change where anyone could
        read them, and the core budget hears of the batch only if it counts this engine
        (``CoreBudget.counts``): for a light engine or dedicated placement its
        ``begin``/``end`` change nothing. A request of an ended query (aborted, past its
        deadline, released) is refused as on the thread.
        """
        futures: list[asyncio.Future[Outputs]] = []
        live: list[tuple[EngineRequest, asyncio.Future[Outputs]]] = []
        for request in requests:
            future: asyncio.Future[Outputs] = loop.create_future()
            request.future = future
            futures.append(future)
            if self.is_closed(request.query_id):
                future.set_exception(self.refused(request))
            else:
                live.append((request, future))
        if live:
            outcomes = self._inline_outcomes([request for request, _ in live])
            for (request, future), outcome in zip(live, outcomes, strict=True):
                self._resolve(request, future, outcome)
        return futures

    def _inline_outcomes(self, batch: list[EngineRequest]) -> list[Outcome]:
        budget = self.budget
        if budget is None or not budget.counts(self.name):
            return self._outcomes(batch)
        budget.begin(self.name)
        try:
            starts = [r.query_start_s for r in batch if r.query_start_s is not None]
            budget.set_query_start(self.name, min(starts, default=None))
            return self._outcomes(batch)
        finally:
            budget.set_query_start(self.name, None)
            budget.end(self.name)

    def _forget(self, query_id: str) -> Callable[[asyncio.Future[Outputs]], None]:
        def callback(future: asyncio.Future[Outputs]) -> None:
            futures = self._futures_by_query.get(query_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._futures_by_query[query_id]

        return callback

    def _run_on_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        requests: list[EngineRequest],
        futures: list[asyncio.Future[Outputs]],
    ) -> None:
        try:
            resolutions = self._run(requests, futures)
        finally:
            loop.call_soon_threadsafe(self._thread_job_done)
        # One hand-off for the whole batch: each call_soon_threadsafe wakes the loop
        # through its self-pipe, which for 32 searches cost more than the searches.
        loop.call_soon_threadsafe(self._resolve_all, resolutions)

    def _resolve_all(self, resolutions: list[Resolution]) -> None:
        for request, future, outcome in resolutions:
            self._resolve(request, future, outcome)

    def _thread_job_done(self) -> None:
        self._num_thread_jobs -= 1

    def _run(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> list[Resolution]:
        """Run the batch on the engine thread; the outcomes to resolve, on the loop thread."""
        resolutions: list[Resolution] = []
        try:
            live = []
            for request, future in zip(requests, futures, strict=True):
                if future.done():  # cancelled by abort
                    continue
                if self.is_closed(request.query_id):
                    ended = EngineError(self.name, request.node, "its query has ended")
                    resolutions.append((request, future, ended))
                    continue
                live.append((request, future))
            with self._lock:
                self._num_queued -= len(requests)
                self._num_running = len(live)
            if self.budget is not None:  # this batch's oldest query, for the core budget
                starts = [r.query_start_s for r, _ in live if r.query_start_s is not None]
                self.budget.set_query_start(self.name, min(starts, default=None))
            self._running_query_ids = frozenset(r.query_id for r, _ in live)
            outcomes = self._outcomes([r for r, _ in live]) if live else []
            resolutions += [(r, f, o) for (r, f), o in zip(live, outcomes, strict=True)]
        finally:
            self._running_query_ids = frozenset()
            with self._lock:
                self._num_running = 0
            # Idle in the budget before anyone sees a result, so cores are already free.
            if self.budget is not None:
                self.budget.set_query_start(self.name, None)
                self.budget.end(self.name)
        return resolutions

    def _outcomes(self, batch: list[EngineRequest]) -> list[Outcome]:
        try:
            outcomes = self.run_batch(batch)
        except BatchAbandoned:
            return [EngineError(self.name, r.node, "its query has ended") for r in batch]
        except Exception as err:  # a bug or a lost backend fails the whole batch
            return [err] * len(batch)
        if len(outcomes) != len(batch):
            reason = f"run_batch gave {len(outcomes)} outcomes for {len(batch)} requests"
            return [RuntimeError(reason)] * len(batch)
        return outcomes

    def _resolve(
        self, request: EngineRequest, future: asyncio.Future[Outputs], outcome: Outcome
    ) -> None:
        if future.done():  # cancelled by abort meanwhile
            return
        if isinstance(outcome, EngineError):
            future.set_exception(outcome)
        elif isinstance(outcome, BaseException):
            future.set_exception(EngineError(self.name, request.node, str(outcome)))
        else:
            future.set_result(outcome)

    def _close_query(self, query_id: str) -> None:
        with self._lock:
            self._closed_queries[query_id] = None
            while len(self._closed_queries) > MAX_NUM_CLOSED_QUERIES:
                self._closed_queries.popitem(last=False)
        self.free_query(query_id)

    def release(self, query_id: str) -> None:
        self._close_query(query_id)

    def abort(self, query_id: str) -> None:
        for future in list(self._futures_by_query.pop(query_id, ())):
            future.cancel()
        self._close_query(query_id)

    def health(self) -> EngineHealth:
        num_queued = max(0, self._num_queued)
        return EngineHealth(
            is_healthy=True,
            num_queued=num_queued,
            num_running=self._num_running,
            load=float(num_queued),
        )

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        # Batches dropped from the executor's queue would leave their futures pending.
        for futures in list(self._futures_by_query.values()):
            for future in list(futures):
                future.cancel()
