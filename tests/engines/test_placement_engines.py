"""The core budget steering real engines: the LLM and the embedder share 2 cores."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from primflow.engines.base import EngineRequest
from primflow.engines.embedder import EmbedderEngine
from primflow.engines.placement import CoreBudget, dedicated_budget
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines


async def generate(engine, query_id: str) -> None:
    prefill = EngineRequest(
        query_id,
        "prefill",
        Op.LLM_PREFILL,
        {"q": "Name a colour."},
        {"template": "{q}"},
        llm_request_id=f"{query_id}/call",
    )
    decode = EngineRequest(
        query_id, "decode", Op.LLM_DECODE, {}, {"max_tokens": 4}, llm_request_id=f"{query_id}/call"
    )
    await engine.submit([prefill])[0]
    await engine.submit([decode])[0]
    engine.release(query_id)


async def test_llm_takes_one_core_while_the_embedder_is_busy() -> None:
    from primflow.engines.llm import LlamaEngine

    budget = CoreBudget(num_cores=2)
    llm = LlamaEngine("llm", n_ctx=1024, n_seq_max=4, budget=budget)
    await llm.start()
    try:
        budget.begin("embedder")  # the embedder holds work: the LLM must step with 1 thread
        await generate(llm, "q1")
        assert llm.stats()["num_threads"] == 1
        budget.end("embedder")
        await generate(llm, "q2")
        assert llm.stats()["num_threads"] == 2
        # The LLM goes idle once its engine thread has processed the release.
        async with asyncio.timeout(30):  # a liveness bound, not a timing assertion
            while budget.busy_engines():
                await asyncio.sleep(0.01)
    finally:
        await llm.close()


async def test_embedder_uses_its_dedicated_share() -> None:
    budget = dedicated_budget(2, {"llm": 1, "embedder": 1})
    engine = EmbedderEngine(budget=budget)
    seen: list[int] = []
    original = engine.lease_threads

    @contextmanager
    def record() -> Iterator[int]:
        with original() as num_threads:
            seen.append(num_threads)
            yield num_threads

    engine.lease_threads = record  # type: ignore[method-assign]
    request = EngineRequest("q1", "embed", Op.EMBED, {"items": ["a", "b"]}, {})
    [out] = await asyncio.gather(*engine.submit([request]))
    assert out["vectors"].shape == (2, 384)
    assert seen == [1]
