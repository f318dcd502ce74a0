"""Aborting a threaded engine's running batch, without a model (engines/threaded.py):
the batch stops at its next unit boundary once every query it serves has ended, with or
without a core budget, and runs on while any of its queries is live."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from primflow.engines.base import EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.graph.ir import Op

NUM_UNITS = 4
LIVENESS_S = 30.0  # a bound on waiting for the engine thread, not a timing assertion


class UnitEngine(ThreadedEngine):
    """Runs every batch as NUM_UNITS units, each inside ``lease_threads``; the first unit
    holds until ``gate`` is set."""

    kind = EngineKind.EMBEDDER

    def __init__(self, budget: CoreBudget | None) -> None:
        super().__init__("embedder", budget=budget)
        self.units_run: list[int] = []
        self.first_unit_held = threading.Event()
        self.gate = threading.Event()

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        for unit in range(NUM_UNITS):
            with self.lease_threads():
                if not self.first_unit_held.is_set():
                    self.first_unit_held.set()
                    self.gate.wait(LIVENESS_S)
                self.units_run.append(unit)
        return [{"vectors": []} for _ in batch]


def request(query_id: str) -> EngineRequest:
    return EngineRequest(query_id, "embed", Op.EMBED, {"items": []}, {})


async def start_and_abort(engine: UnitEngine, requests: list[EngineRequest], aborted: str) -> list:
    futures = engine.submit(requests)
    await asyncio.to_thread(engine.first_unit_held.wait, LIVENESS_S)
    engine.abort(aborted)
    engine.gate.set()
    return futures


@pytest.mark.parametrize("has_budget", [True, False])
async def test_an_aborted_batch_stops_after_its_running_unit(has_budget: bool) -> None:
    budget = CoreBudget(num_cores=2) if has_budget else None
    engine = UnitEngine(budget)
    try:
        [aborted] = await start_and_abort(engine, [request("q")], "q")
        [following] = engine.submit([request("next")])
        await following
    finally:
        engine.gate.set()
        await engine.close()
    assert aborted.cancelled()
    assert engine.units_run == [0, *range(NUM_UNITS)]  # the aborted batch ran unit 0 only
    if budget is not None:
        assert budget.busy_engines() == []


async def test_a_batch_with_a_live_query_runs_every_unit() -> None:
    engine = UnitEngine(CoreBudget(num_cores=2))
    try:
        aborted, live = await start_and_abort(engine, [request("q"), request("live")], "q")
        assert await live == {"vectors": []}
    finally:
        engine.gate.set()
        await engine.close()
    assert aborted.cancelled()
    assert engine.units_run == list(range(NUM_UNITS))
