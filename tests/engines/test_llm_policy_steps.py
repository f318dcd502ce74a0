"""The batching policy decides the real LLM engine's steps (SmolLM2-135M, llama.cpp):
with one query per step, which waiting query's prompt runs first after a busy query's
generation is the policy's call, as each request names it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest
from llm_calls import SYSTEM, one, request

from primflow.engines.llm import LlamaEngine
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    eng = LlamaEngine("llm-policy", n_ctx=2048, n_seq_max=8, n_threads=1)
    yield eng
    asyncio.run(eng.close())


async def first_prompt_after_a_busy_query(engine: LlamaEngine, policy: str) -> str:
    """Query Z (submitted first, arrived first) generates; meanwhile X (submitted at 1.0,
    its call arriving at 3.0) and Y (submitted at 2.0, arriving at 2.0) wait. Returns
    the one whose prefill finished first."""
    engine.set_cross_query_batching("off")  # one query per step: the order is visible
    tag = f"{policy}-"
    busy = replace(
        request(tag + "Z", "prefill", Op.LLM_PREFILL, template="{q}", system=SYSTEM,
                inputs={"q": "Tell a long story about a dragon."}),
        query_start_s=0.0, arrival_s=0.5, policy=policy,
    )  # fmt: skip
    await one(engine, busy)
    decode = replace(
        request(tag + "Z", "decode", Op.LLM_DECODE, max_tokens=40, ignore_eos=True),
        query_start_s=0.0, arrival_s=0.5, policy=policy,
    )  # fmt: skip
    [generating] = engine.submit([decode])
    finished: list[str] = []
    waiting = []
    for query, start_s, arrival_s in (("X", 1.0, 3.0), ("Y", 2.0, 2.0)):
        prefill = replace(
            request(
                tag + query,
                "prefill",
                Op.LLM_PREFILL,
                template="{q}",
                system=SYSTEM,
                inputs={"q": f"What is the letter {query}?"},
            ),
            query_start_s=start_s,
            arrival_s=arrival_s,
            policy=policy,
        )
        [future] = engine.submit([prefill])
        future.add_done_callback(lambda _, q=query: finished.append(q))
        waiting.append(future)
    await asyncio.gather(generating, *waiting)
    for query in "ZXY":
        engine.release(tag + query)
    return finished[0]


@pytest.mark.parametrize(
    ("policy", "first"), [("fifo", "Y"), ("topology", "Y"), ("critical_path", "X")]
)
async def test_the_requests_policy_orders_the_llm_steps(engine, policy, first):
    assert await first_prompt_after_a_busy_query(engine, policy) == first


async def decode_together(engine: LlamaEngine, tag: str) -> int:
    """Two queries prefill, then decode 24 tokens each at the same time; the steps the
    two decodes took."""
    queries = [(f"{tag}-old", 0.0), (f"{tag}-new", 1.0)]
    prefills = [
        replace(
            request(
                q,
                "prefill",
                Op.LLM_PREFILL,
                template="{q}",
                system=SYSTEM,
                inputs={"q": f"Count to twenty, {q}."},
            ),
            query_start_s=start_s,
            arrival_s=start_s + 1.0,
        )
        for q, start_s in queries
    ]
    await asyncio.gather(*engine.submit(prefills))
    await asyncio.sleep(0.05)  # counters are published after the step
    before = engine.stats()["num_steps"]
    decodes = [
        replace(
            request(q, "decode", Op.LLM_DECODE, max_tokens=24, ignore_eos=True),
            query_start_s=start_s,
            arrival_s=start_s + 1.0,
        )
        for q, start_s in queries
    ]
    await asyncio.gather(*engine.submit(decodes))
    await asyncio.sleep(0.05)
    for q, _ in queries:
        engine.release(q)
    return engine.stats()["num_steps"] - before


async def test_the_step_cost_profile_decides_cross_query_batching_on_the_real_engine():
    """23 steps each alone (the first token comes from the prefill's logits): a profile
    whose fixed step cost dominates lets the two queries' decodes share steps, a
    compute-bound one keeps one query per step."""
    fixed_cost = LatencyProfile(step_base_s=0.010, step_per_seq_s=0.0001, step_per_token_s=0.0001)
    compute_bound = fixed_cost.with_changes(step_base_s=0.0001, step_per_seq_s=0.002)
    steps = {}
    for name, profile in (("fixed", fixed_cost), ("compute", compute_bound)):
        eng = LlamaEngine(f"llm-{name}", n_ctx=2048, n_seq_max=8, n_threads=1, profile=profile)
        try:
            steps[name] = await decode_together(eng, name)
        finally:
            await eng.close()
    assert steps["fixed"] <= 30  # shared: about 23
    assert steps["compute"] >= 44  # one after the other: 46
