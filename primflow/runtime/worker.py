"""The engine worker: the event-driven loop around one named engine's scheduler.

It owns an ``EngineScheduler`` and the engine's instances, and wakes on exactly three
events: a request was added, a batch finished, the scheduler's max-wait timer fired.
There is no polling and no task: a wake-up is one ``call_soon`` (coalesced, so every
request that became ready in the same loop iteration is seen by one ``schedule``
call) and the timer is one ``call_at`` kept armed at ``next_wakeup_s``.

For each batch the scheduler forms, the worker makes ONE ``engine.submit(batch)``
call, tells the runtime the requests are dispatched, and routes each future's outcome
to ``on_result`` as soon as it resolves; the batch's slot is freed when all of its
futures have resolved (the engine really finished or cancelled the work).

Any exception from the engine (raised by ``submit`` or set on a future) becomes an
``EngineError`` naming this engine and the request's node, and fails only that request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from primflow.engines.base import Engine, EngineError, EngineKind, EngineRequest, Outputs
from primflow.engines.scheduler import Batch, EngineScheduler

if TYPE_CHECKING:
    from primflow.runtime.clock import Clock, Timer
    from primflow.runtime.hooks import Hook

OnDispatch = Callable[[str, Batch], None]
OnResult = Callable[[EngineRequest, Outputs | None, BaseException | None], None]


class EngineWorker:
    def __init__(
        self,
        name: str,
        instances: Sequence[Engine],
        scheduler: EngineScheduler,
        clock: Clock,
        *,
        on_dispatch: OnDispatch,
        on_result: OnResult,
        is_more_expected: Callable[[EngineScheduler], bool] = lambda scheduler: True,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.name = name
        self.instances = list(instances)
        self.scheduler = scheduler
        self._clock = clock
        self._on_dispatch = on_dispatch
        self._on_result = on_result
        self._is_more_expected = is_more_expected
        self._hooks = hooks
        self._is_llm = self.instances[0].kind is EngineKind.LLM
        self._wakeup: Timer | None = None
        self._timer: Timer | None = None
        self._timer_at_s: float | None = None
        self._is_closed = False

    # -- events -------------------------------------------------------------------
    def add(self, request: EngineRequest) -> None:
        if self._is_closed:
            raise RuntimeError(f"engine worker {self.name!r} is closed")
        self.scheduler.add(request, self._clock.now_s())
        self._wake()

    def remove_query(self, query_id: str) -> list[EngineRequest]:
        """Drop the query's queued requests; running ones finish or are aborted."""
        dropped = self.scheduler.remove_query(query_id)
        if dropped:
            self._wake()
        return dropped

    def abort(self, query_id: str) -> None:
        for instance in self.instances:
            instance.abort(query_id)

    def release(self, query_id: str) -> None:
        for instance in self.instances:
            instance.release(query_id)

    def close(self) -> None:
        self._is_closed = True
        for handle in (self._wakeup, self._timer):
            if handle is not None:
                handle.cancel()
        self._wakeup = self._timer = None

    # -- the step -----------------------------------------------------------------
    def _wake(self) -> None:
        if self._wakeup is None and not self._is_closed:
            self._wakeup = self._clock.call_soon(self._step)

    def _step(self) -> None:
        """Schedule, submit, re-arm the timer."""
        self._wakeup = None
        now_s = self._clock.now_s()
        batches = self.scheduler.schedule(
            now_s,
            loads=self._loads(),
            is_more_expected=self._is_more_expected(self.scheduler),
            unavailable=self._unavailable(),
        )
        for batch in batches:
            self._submit(batch, now_s)
        self._arm_timer(self.scheduler.next_wakeup_s())

    def _submit(self, batch: Batch, now_s: float) -> None:
        for hook in self._hooks:
            hook.on_batch_formed(self.name, batch, now_s)
        instance = self.instances[batch.instance]
        try:
            futures = instance.submit(batch.requests)
            if len(futures) != len(batch.requests):
                raise RuntimeError(
                    f"submit returned {len(futures)} futures for {len(batch.requests)} requests"
                )
        except Exception as exc:  # the engine broke on this batch: fail just its requests
            futures = [_failed_future(exc) for _ in batch.requests]
        self._on_dispatch(self.name, batch)
        for request, future in zip(batch.requests, futures, strict=True):
            request.future = future
            future.add_done_callback(partial(self._on_done, batch, request))

    def _on_done(
        self, batch: Batch, request: EngineRequest, future: asyncio.Future[Outputs]
    ) -> None:
        if future.cancelled():  # after abort this is expected; otherwise the engine gave up
            reason = "the engine cancelled the request"
            self._on_result(request, None, EngineError(self.name, request.node, reason))
        elif (exc := future.exception()) is not None:
            if not isinstance(exc, EngineError):
                exc = EngineError(self.name, request.node, f"{type(exc).__name__}: {exc}")
            self._on_result(request, None, exc)
        else:
            self._on_result(request, future.result(), None)
        batch.num_unfinished -= 1
        if batch.num_unfinished == 0:
            self.scheduler.update(batch, self._clock.now_s())
            self._wake()

    def _loads(self) -> list[float] | None:
        if not self._is_llm or len(self.instances) < 2:
            return None
        return [instance.health().load for instance in self.instances]

    def _unavailable(self) -> list[int]:
        """Instances that report themselves unhealthy (e.g. an actor being restarted)."""
        if len(self.instances) < 2:
            return []
        return [i for i, instance in enumerate(self.instances) if not instance.health().is_healthy]

    def _arm_timer(self, at_s: float | None) -> None:
        if at_s == self._timer_at_s:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at_s = at_s
        self._timer = None if at_s is None else self._clock.call_at(at_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at_s = None
        self._step()


def _failed_future(exc: BaseException) -> asyncio.Future[Outputs]:
    future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future
