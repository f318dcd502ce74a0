"""Inline batches of a threaded engine, without a model (engines/threaded.py): a batch
the engine calls cheap runs on the caller's thread when the engine thread is idle, with
the same outcomes and abort rules as on the thread, and in the core budget only where
the budget counts the engine."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from primflow.engines.base import EngineError, EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.graph.ir import Op


class TinyEngine(ThreadedEngine):
    """Doubles numbers; batches of fewer than 3 requests are cheap. ``gate`` holds the
    engine thread's batches until it is set."""

    kind = EngineKind.FUNCTION

    def __init__(self, budget: CoreBudget | None = None) -> None:
        super().__init__("tiny", budget=budget)
        self.threads_seen: list[int] = []
        self.busy_seen: list[list[str]] = []  # the budget's busy engines during each batch
        self.gate = threading.Event()
        self.gate.set()

    def runs_inline(self, batch: Sequence[EngineRequest]) -> bool:
        return len(batch) < 3

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        self.threads_seen.append(threading.get_ident())
        if self.budget is not None:
            self.busy_seen.append(self.budget.busy_engines())
        if not self.runs_inline(batch):
            self.gate.wait(30.0)
        return [
            {"out": 2 * r.inputs["x"]}
            if isinstance(r.inputs["x"], int)
            else EngineError(self.name, r.node, "x must be an int")
            for r in batch
        ]


def request(query: str, x: object) -> EngineRequest:
    return EngineRequest(query, "double", Op.FUNCTION, {"x": x}, {})


async def test_a_cheap_batch_runs_on_the_loop_thread_and_is_done_at_once() -> None:
    engine = TinyEngine()
    futures = engine.submit([request("q1", 2), request("q1", "two")])
    assert all(f.done() for f in futures)
    assert futures[0].result() == {"out": 4}
    assert isinstance(futures[1].exception(), EngineError)  # fails alone, as on the thread
    assert engine.threads_seen == [threading.get_ident()]
    await engine.close()


async def test_a_cheap_batch_behind_a_queued_one_waits_its_turn() -> None:
    engine = TinyEngine()
    engine.gate.clear()
    slow = engine.submit([request("q1", i) for i in range(3)])
    [cheap] = engine.submit([request("q1", 5)])
    assert not cheap.done()  # the engine thread is busy: no overtaking
    engine.gate.set()
    assert await asyncio.gather(*slow) == [{"out": 0}, {"out": 2}, {"out": 4}]
    assert await cheap == {"out": 10}
    assert engine.threads_seen[0] == engine.threads_seen[1] != threading.get_ident()
    [after] = engine.submit([request("q1", 1)])  # idle again: inline
    assert after.done()
    await engine.close()


async def test_inline_batches_keep_the_core_budget_balanced_and_refuse_ended_queries() -> None:
    budget = CoreBudget(num_cores=2)
    engine = TinyEngine(budget)
    [done] = engine.submit([request("q1", 1)])
    assert done.result() == {"out": 2}
    assert budget.busy_engines() == []  # begin/end matched: it idles in the budget
    assert engine.health().num_queued == 0
    engine.release("q1")
    [late] = engine.submit([request("q1", 1)])
    assert isinstance(late.exception(), EngineError)
    await engine.close()


async def test_an_inline_batch_is_busy_in_a_budget_that_counts_the_engine() -> None:
    budget = CoreBudget(num_cores=2)  # "tiny" is a contender here
    engine = TinyEngine(budget)
    [done] = engine.submit([request("q1", 1)])
    assert done.result() == {"out": 2}
    assert engine.busy_seen == [["tiny"]]  # busy while it ran, so others share the cores
    assert budget.busy_engines() == []
    await engine.close()


async def test_an_inline_batch_of_a_light_engine_leaves_the_budget_alone() -> None:
    budget = CoreBudget(num_cores=2, light_engines=["tiny"])  # no rule counts it
    engine = TinyEngine(budget)
    [done] = engine.submit([request("q1", 1)])
    assert done.result() == {"out": 2} and engine.busy_seen == [[]]
    engine.gate.clear()
    slow = engine.submit([request("q1", i) for i in range(3)])  # the thread path still does
    assert budget.busy_engines() == ["tiny"]
    engine.gate.set()
    await asyncio.gather(*slow)
    assert budget.busy_engines() == []
    await engine.close()


async def test_an_aborted_query_is_refused_inline_and_done_results_stay() -> None:
    engine = TinyEngine()
    [done] = engine.submit([request("q1", 1)])
    engine.abort("q1")  # after the fact: the inline result is already there
    assert not done.cancelled() and done.result() == {"out": 2}
    [late, other] = engine.submit([request("q1", 2), request("q2", 3)])
    assert isinstance(late.exception(), EngineError) and "has ended" in str(late.exception())
    assert other.result() == {"out": 6}  # the batch's other query is served
    await engine.close()
