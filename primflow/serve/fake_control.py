"""Fake engines a test can hold, release and break over HTTP (``--engine-backend fake``).

``ControlledEngine`` wraps a fake of ``primflow.testing.fakes`` (the vector index: the
real, model-free FAISS engine, so persistent collections work): while its gate is
closed, submitted batches wait here before reaching the fake (the engine is "busy");
``fail`` makes requests whose inputs mention a marker fail with an ``EngineError`` and
the engine report itself unhealthy, as a broken engine would. Invariants: ``abort``
cancels a query's held requests and forwards to the fake, so nothing of an aborted
query stays here or there; every held batch is one tracked task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

from primflow.engines.base import (
    Engine,
    EngineError,
    EngineHealth,
    EngineKind,
    EngineRequest,
    Outputs,
)
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.testing.fakes import FAKES_BY_KIND, FakeEngine


class ControlledEngine(Engine):
    def __init__(self, inner: Engine) -> None:
        self.kind = inner.kind
        super().__init__(inner.name, inner.profile)
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.failure: tuple[str, str] | None = None  # (marker, reason)
        self._held: dict[asyncio.Task[None], list[tuple[EngineRequest, asyncio.Future[Outputs]]]]
        self._held = {}

    @property
    def max_batch_size(self) -> int:
        return self.inner.max_batch_size

    @property
    def max_concurrent_batches(self) -> int:
        return self.inner.max_concurrent_batches

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        for task in list(self._held):
            task.cancel()
        await self.inner.close()

    def hold(self) -> None:
        self.gate.clear()

    def release_gate(self) -> None:
        self.gate.set()

    def fail(self, marker: str, reason: str) -> None:
        self.failure = (marker, reason)

    def recover(self) -> None:
        self.failure = None

    @property
    def num_held_requests(self) -> int:
        return sum(1 for held in self._held.values() for _, future in held if not future.done())

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        requests = list(batch)
        futures: list[asyncio.Future[Outputs]] = [loop.create_future() for _ in requests]
        task = loop.create_task(self._forward(requests, futures))
        self._held[task] = list(zip(requests, futures, strict=True))
        task.add_done_callback(self._held.pop)
        return futures

    async def _forward(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> None:
        await self.gate.wait()
        live = [(r, f) for r, f in zip(requests, futures, strict=True) if not f.done()]
        passing: list[tuple[EngineRequest, asyncio.Future[Outputs]]] = []
        for request, future in live:
            if self.failure is not None and self.failure[0] in repr(request.inputs):
                future.set_exception(EngineError(self.name, request.node, self.failure[1]))
            else:
                passing.append((request, future))
        if not passing:
            return
        inner_futures = self.inner.submit([r for r, _ in passing])
        for (_, outer), inner in zip(passing, inner_futures, strict=True):
            inner.add_done_callback(partial(_copy_result, target=outer))
            outer.add_done_callback(partial(_cancel_if_cancelled, inner=inner))

    def abort(self, query_id: str) -> None:
        # A held batch may mix queries: cancel this query's requests, and the batch's
        # task once none of its requests is live.
        for task, held in list(self._held.items()):
            for request, future in held:
                if request.query_id == query_id:
                    future.cancel()
            if all(future.done() for _, future in held):
                task.cancel()
        self.inner.abort(query_id)

    def release(self, query_id: str) -> None:
        self.inner.release(query_id)

    def health(self) -> EngineHealth:
        inner = self.inner.health()
        if self.failure is not None:
            return EngineHealth(
                is_healthy=False,
                detail=f"failing: {self.failure[1]}",
                num_queued=self.num_held_requests,
                num_running=inner.num_running,
                load=inner.load,
            )
        return EngineHealth(
            is_healthy=inner.is_healthy,
            detail=inner.detail,
            num_queued=inner.num_queued + self.num_held_requests,
            num_running=inner.num_running,
            load=inner.load,
        )

    def state(self) -> dict[str, Any]:
        """What this engine still holds for any query: all zero when nothing is left."""
        inner = self.inner
        if not isinstance(inner, FakeEngine):
            return self._faiss_state()
        calls = getattr(inner, "_calls", {})
        served = (r.query_id for batch in inner.batches for r in batch)
        collections = getattr(inner, "collections", {})
        return {
            "num_held_requests": self.num_held_requests,
            "num_tracked_tasks": inner.num_tracked_tasks,
            "num_queries_with_state": inner.num_queries_with_state,
            "num_llm_calls": len(calls),
            "num_collections": len(collections),
            "aborted": list(inner.aborted[-100:]),
            # Queries in the order their first request reached the engine.
            "served_queries": list(dict.fromkeys(served))[-100:],
        }

    def _faiss_state(self) -> dict[str, Any]:
        from primflow.engines.vector import FaissEngine

        assert isinstance(self.inner, FaissEngine)
        health = self.inner.health()
        # Per-query collections are named "<query id>/<name>"; shared ones have no "/".
        per_query = [n for n in self.inner.collection_names() if "/" in n]
        return {
            "num_held_requests": self.num_held_requests,
            "num_tracked_tasks": health.num_queued + health.num_running,
            "num_queries_with_state": len({n.split("/")[0] for n in per_query}),
            "num_llm_calls": 0,
            "num_collections": len(per_query),
            "aborted": [],
            "served_queries": [],
        }


def _copy_result(source: asyncio.Future[Outputs], target: asyncio.Future[Outputs]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())


def _cancel_if_cancelled(outer: asyncio.Future[Outputs], inner: asyncio.Future[Outputs]) -> None:
    if outer.cancelled() and not inner.done():
        inner.cancel()


def controlled_fake_factory(latency_scale: float) -> Any:
    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine:
        if kind is EngineKind.FUNCTION:  # users' Python steps: model-free already
            from primflow.engines.function import FunctionEngine

            return FunctionEngine(name, profile, budget)
        if kind is EngineKind.VECTOR_INDEX:
            from primflow.engines.vector import FaissEngine

            return ControlledEngine(FaissEngine(name, profile, budget))
        return ControlledEngine(FAKES_BY_KIND[kind](name, profile, latency_scale=latency_scale))

    return build
