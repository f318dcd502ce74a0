"""The Ray actor that hosts one engine instance (``EngineHost``).

Invariants:

- The engine is built inside the actor's process by the factory the driver handed over
  (Ray pickles it) and started on first use, so an actor that Ray restarts after a crash
  (it re-runs ``__init__``) serves again without the driver sending anything anew.
- ``run_batch`` is a streaming generator: one ``engine.submit`` of the whole batch, then
  one event per request outcome and per piece of streamed text, yielded as they happen;
  a partial decode's item therefore reaches the driver as soon as it closes.
- ``abort`` and ``release`` run concurrently with running batches (an async actor runs
  many calls at once on its event loop), so an abort reaches the engine while its
  request runs and cancels it there.
- The engine sees batches and aborts in the order the driver sent them (each carries
  the proxy's sequence number): Ray runs an async actor's calls concurrently and does
  not keep their order, and the phases of one LLM call (partial prefills, decode) or an
  index's insert and search of one query must reach the engine in order. Each call also
  carries the driver's *floor*: the lowest sequence number it has sent and not yet seen
  finish. Every call below the floor has run or failed for good (Ray never re-runs a
  call, ``max_task_retries`` is 0), so the host never waits for one; that is also how a
  fresh or restarted incarnation learns where the count stands, whichever call reaches
  it first. A call waits for the ones before it at most ``MAX_ORDER_WAIT_S``, a last
  resort against a predecessor lost in a crash that the driver had not yet seen fail.
- Large output arrays go into the object store from here (``wire.StoredValue``); input
  references are fetched here, so a value moves between actors without the driver.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from typing import Any

import ray

from primflow.engines.base import Engine, EngineError, EngineHealth, EngineRequest, Outputs
from primflow.engines.placement import CoreBudget
from primflow.engines.ray_actors.wire import (
    EngineDescription,
    Outcome,
    StoredValue,
    TextPiece,
    is_large,
)

EngineBuilder = Callable[[CoreBudget], Engine]

LOG = logging.getLogger(__name__)

MAX_ORDER_WAIT_S = 30.0


class EngineHost:
    """One engine instance inside a Ray actor; see the module docstring."""

    def __init__(self, build: EngineBuilder, num_cores: int) -> None:
        # The engine is alone in its actor, so it may use every core the actor reserved.
        self._engine = build(CoreBudget(num_cores))
        self._start_lock = asyncio.Lock()
        self._is_started = False
        # Inputs that arrived as object-store references (from another actor).
        self.num_fetched_inputs = 0
        self.num_batches = 0  # batches this incarnation ran (tests, benchmarks)
        # The sequence number of the next call to hand to the engine (module docstring).
        self._next_seq: int | None = None
        self._turn = asyncio.Condition()

    def describe(self) -> EngineDescription:
        engine = self._engine
        return EngineDescription(
            kind=engine.kind,
            profile=engine.profile,
            max_batch_size=engine.max_batch_size,
            max_concurrent_batches=engine.max_concurrent_batches,
            node_id=ray.get_runtime_context().get_node_id(),
            pid=os.getpid(),
        )

    async def ping(self) -> int:
        await self._ensure_started()
        return os.getpid()

    async def run_batch(
        self,
        seq: int,
        floor: int,
        requests: Sequence[EngineRequest],
        wants_text: Sequence[bool],
    ) -> AsyncIterator[Outcome | TextPiece]:
        await self._ensure_started()
        self.num_batches += 1
        events: asyncio.Queue[tuple[int, str | None]] = asyncio.Queue()
        batch = [await self._with_fetched_inputs(request) for request in requests]
        for index, (request, is_wanted) in enumerate(zip(batch, wants_text, strict=True)):
            if is_wanted:
                request.on_text = partial(_put_text, events, index)
        await self._wait_turn(seq, floor)
        futures: list[asyncio.Future[Outputs]] = []
        broke: Exception | None = None
        try:
            futures = self._engine.submit(batch)
        except Exception as exc:  # the engine broke on this batch: fail just its requests
            broke = exc
        await self._end_turn(seq)
        if broke is not None:
            for index, request in enumerate(batch):
                yield self._failure(index, request, broke)
            return
        for index, future in enumerate(futures):
            future.add_done_callback(partial(_put_done, events, index))
        num_unfinished = len(futures)
        while num_unfinished:
            index, text = await events.get()
            if text is not None:
                yield TextPiece(index, text + _more_text(events, index))
                continue
            num_unfinished -= 1
            yield self._outcome(index, batch[index], futures[index])

    async def run_batch_at_once(
        self,
        seq: int,
        floor: int,
        requests: Sequence[EngineRequest],
        wants_text: Sequence[bool],
    ) -> list[Outcome | TextPiece]:
        """``run_batch`` in one answer: for batches whose requests finish together and
        stream nothing, one round trip instead of one per event."""
        return [event async for event in self.run_batch(seq, floor, requests, wants_text)]

    async def abort(self, seq: int, floor: int, query_id: str) -> None:
        await self._wait_turn(seq, floor)
        try:
            self._engine.abort(query_id)
        finally:
            await self._end_turn(seq)

    def release(self, query_id: str) -> None:
        self._engine.release(query_id)

    def health(self) -> EngineHealth:
        return self._engine.health()

    def engine_attribute(self, name: str) -> Any:
        """An attribute of the hosted engine, or of this host (tests, diagnostics)."""
        if name in ("num_fetched_inputs", "num_batches"):
            return getattr(self, name)
        return getattr(self._engine, name)

    def engine_call(self, method: str, *args: Any) -> None:
        """Call a method of the hosted engine, dropping its result (tests' knobs, such
        as a fake engine's ``block``)."""
        getattr(self._engine, method)(*args)

    async def close(self) -> None:
        await self._engine.close()

    # -- internals ----------------------------------------------------------------
    async def _ensure_started(self) -> None:
        if self._is_started:
            return
        async with self._start_lock:
            if not self._is_started:
                await self._engine.start()
                self._is_started = True

    async def _wait_turn(self, seq: int, floor: int) -> None:
        async with self._turn:
            if self._next_seq is None or floor > self._next_seq:
                self._next_seq = floor  # the calls below it never come (module docstring)
                self._turn.notify_all()
            if seq <= self._next_seq:
                return
            try:
                await asyncio.wait_for(
                    self._turn.wait_for(lambda: self._seq_at_least(seq)), MAX_ORDER_WAIT_S
                )
            except TimeoutError:  # a predecessor lost in a crash: go on regardless
                LOG.warning(
                    "engine %s: call %d went ahead after waiting %.0f s for call %d",
                    self._engine.name,
                    seq,
                    MAX_ORDER_WAIT_S,
                    self._next_seq,
                )

    async def _end_turn(self, seq: int) -> None:
        async with self._turn:
            self._next_seq = max(self._next_seq or 0, seq + 1)
            self._turn.notify_all()

    def _seq_at_least(self, seq: int) -> bool:
        return self._next_seq is not None and self._next_seq >= seq

    async def _with_fetched_inputs(self, request: EngineRequest) -> EngineRequest:
        if not any(isinstance(v, StoredValue) for v in request.inputs.values()):
            return request
        inputs: dict[str, Any] = {}
        for port, value in request.inputs.items():
            if isinstance(value, StoredValue):
                self.num_fetched_inputs += 1
                inputs[port] = await value.ref
            else:
                inputs[port] = value
        request.inputs = inputs
        return request

    def _outcome(
        self, index: int, request: EngineRequest, future: asyncio.Future[Outputs]
    ) -> Outcome:
        health = self._engine.health()
        if future.cancelled():
            return Outcome(index, None, None, True, health)
        exc = future.exception()
        if exc is not None:
            return self._failure(index, request, exc, health)
        return Outcome(index, _stored(future.result()), None, False, health)

    def _failure(
        self,
        index: int,
        request: EngineRequest,
        exc: BaseException,
        health: EngineHealth | None = None,
    ) -> Outcome:
        if isinstance(exc, EngineError):
            error = (exc.engine, exc.node, exc.reason)
        else:
            error = (self._engine.name, request.node, f"{type(exc).__name__}: {exc}")
        return Outcome(index, None, error, False, health or self._engine.health())


def _stored(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        port: StoredValue(ray.put(value)) if is_large(value) else value
        for port, value in outputs.items()
    }


def _more_text(events: asyncio.Queue[tuple[int, str | None]], index: int) -> str:
    """Text of the same request queued right behind: sent as one piece, one event."""
    pieces: list[str] = []
    while not events.empty():
        queued = events._queue[0]  # type: ignore[attr-defined]  # a peek; no await between
        if queued[0] != index or queued[1] is None:
            break
        pieces.append(events.get_nowait()[1] or "")
    return "".join(pieces)


def _put_text(events: asyncio.Queue[tuple[int, str | None]], index: int, text: str) -> None:
    events.put_nowait((index, text))


def _put_done(
    events: asyncio.Queue[tuple[int, str | None]], index: int, _future: asyncio.Future[Outputs]
) -> None:
    events.put_nowait((index, None))
