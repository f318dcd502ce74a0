"""Token usage of each LLM phase on the real SmolLM2-135M-Instruct (llama.cpp).

A prefill reports the prompt tokens it added, which are exactly what the engine then
computed or took from its prefix cache (``num_prefilled_tokens`` + ``num_reused_tokens``);
a decode the tokens it generated: all of ``max_tokens`` with ``ignore_eos``, and those
the engine fed back plus the last sampled one otherwise. The split phases of one call
(partial + full prefill, partial decodes + decode) sum to the call's totals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llm_calls import SYSTEM, one, request

from primflow.engines.base import USAGE, TokenUsage
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines

QUESTION = "What is the capital of France?"
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    eng = LlamaEngine("llm-usage", n_ctx=1024, n_seq_max=4, n_threads=1)
    yield eng
    asyncio.run(eng.close())


def prompt_tokens_seen(engine: LlamaEngine) -> int:
    stats = engine.stats()
    return stats["num_prefilled_tokens"] + stats["num_reused_tokens"]


async def test_a_prefill_and_a_forced_decode_report_their_real_counts(engine):
    before = prompt_tokens_seen(engine)
    prefill = await one(
        engine,
        request(
            "q-usage",
            "prefill",
            Op.LLM_PREFILL,
            template="{q}",
            system=SYSTEM,
            inputs={"q": QUESTION},
        ),
    )
    usage = prefill[USAGE]
    assert usage.num_output_tokens == 0
    assert usage.num_input_tokens == prompt_tokens_seen(engine) - before > len(QUESTION.split())
    decode = await one(
        engine,
        request("q-usage", "decode", Op.LLM_DECODE, max_tokens=MAX_TOKENS, ignore_eos=True),
    )
    engine.release("q-usage")
    assert decode[USAGE] == TokenUsage(num_input_tokens=0, num_output_tokens=MAX_TOKENS)


async def test_split_phases_sum_to_the_calls_tokens(engine):
    prompt_before = prompt_tokens_seen(engine)
    decoded_before = engine.stats()["num_decoded_tokens"]
    opening = request(
        "q-split",
        "partial",
        Op.LLM_PARTIAL_PREFILL,
        template="{s}",
        system=SYSTEM,
        inputs={"s": "Answer briefly."},
    )
    closing = request(
        "q-split", "full", Op.LLM_FULL_PREFILL, template="{q}", inputs={"q": QUESTION}
    )
    partial = await one(engine, opening)
    full = await one(engine, closing)
    assert partial[USAGE].num_input_tokens > 0 and full[USAGE].num_input_tokens > 0
    num_prompt_tokens = partial[USAGE].num_input_tokens + full[USAGE].num_input_tokens
    assert num_prompt_tokens == prompt_tokens_seen(engine) - prompt_before
    decode = await one(engine, request("q-split", "decode", Op.LLM_DECODE, max_tokens=MAX_TOKENS))
    engine.release("q-split")
    num_generated = decode[USAGE].num_output_tokens
    assert 0 < num_generated <= MAX_TOKENS
    # Every kept token but the last is fed back, or all of them when an end token
    # (sampled from the last one's logits, never kept) ended the answer.
    num_fed = engine.stats()["num_decoded_tokens"] - decoded_before
    assert num_fed in (num_generated - 1, num_generated)


async def test_partial_decodes_and_the_decode_share_the_generated_tokens(engine):
    template = "Write 3 web search queries for: {q}. Reply with a JSON list of strings."
    prefill = request(
        "q-items",
        "prefill",
        Op.LLM_PREFILL,
        system=SYSTEM,
        template=template,
        inputs={"q": "how to bake bread"},
    )
    await one(engine, prefill)
    decoded_before = engine.stats()["num_decoded_tokens"]
    common = {"num_items": 3, "parser": "json_list", "max_tokens": 64}
    futures = engine.submit(
        [request("q-items", f"pd{i}", Op.LLM_PARTIAL_DECODE, index=i, **common) for i in range(3)]
        + [request("q-items", "decode", Op.LLM_DECODE, **common)]
    )
    *items, final = await asyncio.gather(*futures)
    engine.release("q-items")
    counts = [outputs[USAGE].num_output_tokens for outputs in [*items, final]]
    # Each partial decode counts the tokens since the previous item, the decode the rest
    # (the list's closing): together, every token kept, the last one never fed back.
    assert all(count > 0 for count in counts[:3])
    num_fed = engine.stats()["num_decoded_tokens"] - decoded_before
    assert sum(counts) in (num_fed, num_fed + 1)
    assert all(outputs[USAGE].num_input_tokens == 0 for outputs in [*items, final])
