"""A threaded engine tells the core budget which query its running batch serves, so an
engine serving a younger query yields to it (placement's oldest-query-first rule)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from primflow.engines.base import EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.graph.ir import Op


class ProbeEngine(ThreadedEngine):
    """Records, while its batch runs, whether the budget makes the LLM yield to it."""

    kind = EngineKind.EMBEDDER

    def __init__(self, budget: CoreBudget) -> None:
        super().__init__("embedder", budget=budget)
        self.llm_yielded: list[bool] = []

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        assert self.budget is not None
        self.llm_yielded.append(self.budget.should_defer("llm"))
        return [{"vectors": []} for _ in batch]


def _request(query_start_s: float | None) -> EngineRequest:
    return EngineRequest("q", "embed", Op.EMBED, {"items": []}, {}, query_start_s=query_start_s)


async def test_the_running_batch_sets_its_oldest_query_and_clears_it_after() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("llm")
    budget.set_query_start("llm", 5.0)
    engine = ProbeEngine(budget)
    try:
        await asyncio.gather(*engine.submit([_request(7.0), _request(1.0)]))
        await asyncio.gather(*engine.submit([_request(9.0)]))
        await asyncio.gather(*engine.submit([_request(None)]))  # a baseline's request
    finally:
        await engine.close()
    assert engine.llm_yielded == [True, False, False]  # only the batch holding query 1.0
    assert not budget.should_defer("llm")  # done: it holds nobody back
