"""Aborting a running embedder batch on the real MiniLM model (engines/threaded.py).

The rule under test: the sub-batch running when the abort comes finishes and holds its
core-budget lease to its end; once every request of the batch belongs to an ended query
the batch stops at that sub-batch boundary, so the next batch's first lease comes after
the aborted batch's last lease ended and after it left the budget. A batch fused with a
live query's request still embeds everything. Observed through the budget's calls (a
recording ``CoreBudget``), never through timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from primflow.engines.base import EngineRequest
from primflow.engines.embedder import DIM, EmbedderEngine, shared_encoder
from primflow.engines.placement import CoreBudget
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines

NUM_ABORTED_TEXTS = 100  # 4 sub-batches of <= 32
LIVENESS_S = 60.0  # a bound on waiting for the engine thread, not a timing assertion


class RecordingBudget(CoreBudget):
    """Logs every lease and ``end`` in call order; the first lease holds until ``gate``
    is set, so the test can abort while a sub-batch holds its lease."""

    def __init__(self) -> None:
        super().__init__(num_cores=2)
        self.events: list[str] = []
        self.first_lease_held = threading.Event()
        self.gate = threading.Event()

    @contextmanager
    def lease(self, engine: str) -> Iterator[int]:
        with super().lease(engine) as num_threads:
            self.events.append("lease")
            if not self.first_lease_held.is_set():
                self.first_lease_held.set()
                self.gate.wait(LIVENESS_S)
            try:
                yield num_threads
            finally:
                self.events.append("lease_end")

    def end(self, engine: str) -> None:
        self.events.append("end")
        super().end(engine)


def embed(query_id: str, texts: list[str]) -> EngineRequest:
    return EngineRequest(query_id, "embed", Op.EMBED, {"items": texts}, {})


def texts(prefix: str, num: int) -> list[str]:
    return [f"{prefix} sentence number {i} about rivers and mountains" for i in range(num)]


async def held_first_lease(budget: RecordingBudget) -> None:
    await asyncio.to_thread(budget.first_lease_held.wait, LIVENESS_S)
    assert budget.first_lease_held.is_set()


async def test_abort_stops_the_batch_and_frees_the_cores_before_the_next_batch() -> None:
    budget = RecordingBudget()
    engine = EmbedderEngine(budget=budget)
    next_texts = texts("next", 3)
    try:
        [aborted] = engine.submit([embed("q-aborted", texts("old", NUM_ABORTED_TEXTS))])
        await held_first_lease(budget)
        engine.abort("q-aborted")
        [following] = engine.submit([embed("q-next", next_texts)])
        budget.gate.set()
        result = await following
    finally:
        budget.gate.set()
        await engine.close()
    assert aborted.cancelled()
    # The aborted batch ran only the sub-batch that held its lease at the abort, left the
    # budget, and only then did the next batch lease its cores.
    assert budget.events == ["lease", "lease_end", "end", "lease", "lease_end", "end"]
    assert budget.busy_engines() == []
    expected = shared_encoder().encode(next_texts)
    np.testing.assert_allclose(result["vectors"], expected, atol=1e-4)


async def test_a_batch_fused_with_a_live_query_embeds_everything() -> None:
    budget = RecordingBudget()
    engine = EmbedderEngine(budget=budget)
    live_texts = texts("live", 40)
    try:
        aborted, live = engine.submit(
            [embed("q-aborted", texts("old", NUM_ABORTED_TEXTS)), embed("q-live", live_texts)]
        )
        await held_first_lease(budget)
        engine.abort("q-aborted")
        budget.gate.set()
        result = await live
    finally:
        budget.gate.set()
        await engine.close()
    assert aborted.cancelled()
    num_sub_batches = -(-(NUM_ABORTED_TEXTS + len(live_texts)) // 32)
    assert budget.events == ["lease", "lease_end"] * num_sub_batches + ["end"]
    assert result["vectors"].shape == (len(live_texts), DIM)
    np.testing.assert_allclose(result["vectors"], shared_encoder().encode(live_texts), atol=1e-4)
