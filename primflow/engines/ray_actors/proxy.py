"""``RayEngine``: the driver-side stand-in for one engine instance in a Ray actor.

It implements the engine contract (engines/base.py), so the runtime, its engine
scheduler (which balances several instances of one named engine) and the graph
schedulers stay in the driver and cannot tell it from an in-process engine.

Invariants:

- ``submit`` returns at once: the batch goes to the actor as one streaming call, and a
  task of the proxy resolves each request's future from the actor's events as they
  arrive (partial decodes as each item closes; ``on_text`` gets the pieces in order).
- ``abort`` cancels the query's futures here at once and tells the actor, whose engine
  cancels the running request; ``release`` is forwarded.
- An actor that dies fails only the requests it was running, each with an
  :class:`EngineError` naming the engine instance (``embedder#1``) and the actor. The
  instance then reports itself unhealthy, so the engine scheduler sends new work to the
  healthy instances, until a probe finds the actor restarted by Ray (``max_restarts``).
- Stored values (``wire.StoredValue``) are fetched before a future resolves (the
  graph scheduler sizes work and runs inline ops on real values) and remembered, so
  the same array goes to the next actor by its object-store reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from primflow.engines.base import Engine, EngineError, EngineHealth, EngineRequest, Outputs
from primflow.engines.ray_actors.cluster import disconnect
from primflow.engines.ray_actors.wire import (
    STORED_VALUES,
    EngineDescription,
    Outcome,
    StoredValue,
    TextPiece,
    is_large,
)

# How long a dead instance is probed for Ray to bring it back, and how often.
MAX_RECOVERY_WAIT_S = 120.0
PROBE_INTERVAL_S = 0.1


class RayEngine(Engine):
    """Engine instance ``instance`` of ``name``, running in the Ray actor ``actor``."""

    def __init__(
        self, name: str, instance: int, actor: Any, description: EngineDescription
    ) -> None:
        self.kind = description.kind
        super().__init__(name, description.profile)
        self.instance = instance
        self.label = f"{name}#{instance}"
        self.actor = actor
        self.description = description
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_health = EngineHealth(is_healthy=True)
        self._down_reason: str | None = None
        self._num_running = 0
        self.num_restarts_seen = 0
        # Numbers the calls that reach the engine, so the actor keeps their order; the
        # numbers sent and not yet seen finish give each call's floor (host.py).
        self._next_seq = 0
        self._unfinished_seqs: set[int] = set()

    @property
    def max_batch_size(self) -> int:
        return self.description.max_batch_size

    @property
    def max_concurrent_batches(self) -> int:
        return self.description.max_concurrent_batches

    @property
    def is_up(self) -> bool:
        return self._down_reason is None

    async def start(self) -> None:
        """Wait until the actor has started its engine (loaded its model)."""
        await self.actor.ping.remote()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        ray.kill(self.actor, no_restart=True)
        disconnect()

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        requests = list(batch)
        futures: list[asyncio.Future[Outputs]] = [loop.create_future() for _ in requests]
        for request, future in zip(requests, futures, strict=True):
            live = self._futures_by_query.setdefault(request.query_id, set())
            live.add(future)
            future.add_done_callback(self._forget(request.query_id))
        wire = [_for_the_wire(request) for request in requests]
        wants_text = [request.on_text is not None for request in requests]
        seq, floor = self._take_seq()
        if any(wants_text) or (len(requests) > 1 and self.max_concurrent_batches > 1):
            # Text to stream, or requests that finish one by one (continuous batching).
            run = self.actor.run_batch.options(num_returns="streaming")
            events = _streamed(run.remote(seq, floor, wire, wants_text))
        else:
            ref = self.actor.run_batch_at_once.remote(seq, floor, wire, wants_text)
            events = _at_once(ref)
        self._start_task(self._consume(events, requests, futures), seq)
        return futures

    def abort(self, query_id: str) -> None:
        for future in self._futures_by_query.pop(query_id, set()):
            future.cancel()
        if self.is_up:
            seq, floor = self._take_seq()
            self._start_task(_awaited(self.actor.abort.remote(seq, floor, query_id)), seq)

    def release(self, query_id: str) -> None:
        self._futures_by_query.pop(query_id, None)
        if self.is_up:
            self.actor.release.remote(query_id)

    def health(self) -> EngineHealth:
        last = self._last_health
        if self._down_reason is not None:
            return EngineHealth(False, self._down_reason, last.num_queued, self._num_running, 1.0)
        return EngineHealth(True, last.detail, last.num_queued, self._num_running, last.load)

    # -- internals ----------------------------------------------------------------
    def _take_seq(self) -> tuple[int, int]:
        """The next call's sequence number and floor (host.py)."""
        seq = self._next_seq
        self._next_seq += 1
        self._unfinished_seqs.add(seq)
        return seq, min(self._unfinished_seqs)

    def _start_task(self, call: Coroutine[Any, Any, None], seq: int) -> None:
        """Run ``call`` (the driver's side of actor call ``seq``) and count the call
        finished when it ends, whichever way."""
        task = asyncio.get_running_loop().create_task(call)
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            self._unfinished_seqs.discard(seq)

        task.add_done_callback(finished)

    async def _consume(
        self,
        events: AsyncIterator[Outcome | TextPiece],
        requests: list[EngineRequest],
        futures: list[asyncio.Future[Outputs]],
    ) -> None:
        self._num_running += len(requests)
        try:
            async for event in events:
                if isinstance(event, TextPiece):
                    on_text = requests[event.index].on_text
                    if on_text is not None and not futures[event.index].done():
                        on_text(event.text)
                else:
                    await self._resolve(event, requests[event.index], futures[event.index])
        except RayActorError as exc:
            self._fail_all(requests, futures, self._died(exc))
        except Exception as exc:  # a broken stream fails the batch, never the loop
            self._fail_all(requests, futures, f"{type(exc).__name__}: {exc}")
        finally:
            self._num_running -= len(requests)
            self._fail_all(requests, futures, "the actor's stream ended without an outcome")

    async def _resolve(
        self, event: Outcome, request: EngineRequest, future: asyncio.Future[Outputs]
    ) -> None:
        self._last_health = event.health
        if future.done():  # aborted here meanwhile
            return
        if event.is_cancelled:
            future.cancel()
        elif event.error is not None:
            engine, node, reason = event.error
            future.set_exception(EngineError(engine, node, f"{reason} (on {self.label})"))
        else:
            assert event.outputs is not None
            outputs = await _fetched(event.outputs)
            if not future.done():
                future.set_result(outputs)

    def _died(self, exc: RayActorError) -> str:
        reason = (
            f"engine instance {self.label} (Ray actor {self.actor._actor_id.hex()[:12]} "
            f"on node {self.description.node_id[:12]}) died: {type(exc).__name__}"
        )
        if self._down_reason is None:
            self._down_reason = reason
            task = asyncio.get_running_loop().create_task(self._await_recovery())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return reason

    async def _await_recovery(self) -> None:
        """Probe the actor until Ray has restarted it (or give up: it stays down)."""
        give_up_at_s = time.monotonic() + MAX_RECOVERY_WAIT_S
        while time.monotonic() < give_up_at_s:
            try:
                await self.actor.ping.remote()
            except RayActorError:  # restarting (unavailable), or dead for good
                await asyncio.sleep(PROBE_INTERVAL_S)
            else:
                self._down_reason = None
                self.num_restarts_seen += 1
                return

    def _fail_all(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]], reason: str
    ) -> None:
        for request, future in zip(requests, futures, strict=True):
            if not future.done():
                future.set_exception(EngineError(self.name, request.node, reason))

    def _forget(self, query_id: str) -> Any:
        def callback(future: asyncio.Future[Outputs]) -> None:
            live = self._futures_by_query.get(query_id)
            if live is not None:
                live.discard(future)
                if not live:
                    del self._futures_by_query[query_id]

        return callback


async def _awaited(ref: Any) -> None:
    with contextlib.suppress(RayError):  # a dead actor has nothing left to abort
        await ref


async def _streamed(stream: Any) -> AsyncIterator[Outcome | TextPiece]:
    async for ref in stream:
        yield await ref


async def _at_once(ref: Any) -> AsyncIterator[Outcome | TextPiece]:
    for event in await ref:
        yield event


def _for_the_wire(request: EngineRequest) -> EngineRequest:
    """The request without its driver-side parts; known stored arrays by reference."""
    inputs: dict[str, Any] = {}
    for port, value in request.inputs.items():
        ref = STORED_VALUES.ref_of(value) if is_large(value) else None
        inputs[port] = value if ref is None else StoredValue(ref)
    return dataclasses.replace(request, inputs=inputs, future=None, on_text=None)


async def _fetched(outputs: dict[str, Any]) -> Outputs:
    fetched: Outputs = {}
    for port, value in outputs.items():
        if isinstance(value, StoredValue):
            array = await value.ref
            STORED_VALUES.remember(array, value.ref)
            fetched[port] = array
        else:
            fetched[port] = value
    return fetched
