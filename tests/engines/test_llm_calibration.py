"""Calibrated choices on the embedded LLM (SmolLM2 on llama.cpp): the decision is the
argmax of the scores it records, the content-free prior is computed once per prompt
template and cached, answers of several tokens are scored by forced tokens in ordinary
(batched) steps, and a decode that cannot be calibrated fails with what is missing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from primflow.engines.base import EngineError
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op
from primflow.graph.ops import CHOICE_SCORES, TEXT
from tests.engines.llm_calls import one, request, wait_until

pytestmark = pytest.mark.engines

TEMPLATE = "Does answering this question need a web search? Reply yes or no.\nQ: {q}\nReply:"
# Several tokens each, sharing their first ones: the scorer walks a trie of forced tokens.
LONG_ANSWERS = ["Zorblatization", "Zorblat river", "qwxyzzy"]


async def judge(
    engine: LlamaEngine, query: str, question: str, choices: list[str], **decode: Any
) -> dict[str, Any]:
    prefill = request(query, "j.prefill", Op.LLM_PREFILL, template=TEMPLATE, inputs={"q": question})
    prefill.params["content_free"] = "N/A"
    await one(engine, prefill)
    params = {"max_tokens": 16, "choices": choices, "calibrate": True, **decode}
    result = await one(engine, request(query, "j.decode", Op.LLM_DECODE, **params))
    engine.release(query)
    return result


def argmax(scores: dict[str, dict[str, float]]) -> str:
    return max(scores, key=lambda answer: scores[answer]["calibrated"])


async def test_the_decision_is_the_argmax_and_the_prior_is_computed_once() -> None:
    engine = LlamaEngine("judge", n_ctx=2048, n_seq_max=4)
    await engine.start()
    try:
        found = [
            await judge(engine, f"q{i}", question, ["yes", "no"], choice_bias={"no": 0.25})
            for i, question in enumerate(["Which RFC published TLS 1.3?", "Say hello."])
        ]
        stats = engine.stats()
    finally:
        await engine.close()
    for result in found:
        scores = result[CHOICE_SCORES]
        assert result[TEXT] == argmax(scores)
        assert scores["no"]["bias"] == 0.25 and scores["yes"]["bias"] == 0.0
    priors = [{a: s["prior"] for a, s in r[CHOICE_SCORES].items()} for r in found]
    assert priors[0] == priors[1]  # one content-free prompt, one prior
    assert [r[CHOICE_SCORES]["yes"]["logprob"] for r in found] != [priors[0]["yes"]] * 2
    assert stats["num_cached_priors"] == 1
    assert stats["num_decoded_tokens"] == 0  # "yes"/"Yes", "no"/"No": one token each


async def test_long_answers_are_scored_alike_alone_and_batched() -> None:
    engine = LlamaEngine("judge", n_ctx=2048, n_seq_max=4)
    await engine.start()
    try:
        alone = await judge(engine, "alone", "Where is Kestra?", LONG_ANSWERS)
        batched = await asyncio.gather(
            *(
                judge(engine, f"b{i}", q, LONG_ANSWERS)
                for i, q in enumerate(["Where is Kestra?", "How long is it?"])
            )
        )
        stats = engine.stats()
        # Every scoring sequence and prior finished (the snapshot follows the step).
        await wait_until(lambda: engine.health().num_running == 0)
    finally:
        await engine.close()
    assert stats["num_decoded_tokens"] > 0  # forced tokens ran as decode tokens
    for answer in LONG_ANSWERS:
        a, b = alone[CHOICE_SCORES][answer], batched[0][CHOICE_SCORES][answer]
        # The same prompt computed whole or from a cached prefix, alone or in a batch,
        # differs by up to ~0.5 nats over these ~40-nat answers (Q4_1 kernels; measured);
        # scoring an answer after another answer's leftover tokens would be far off.
        assert a["logprob"] == pytest.approx(b["logprob"], abs=1.0)
        assert a["prior"] == b["prior"]
    for result in (alone, *batched):
        assert result[TEXT] == argmax(result[CHOICE_SCORES]) and result[TEXT] in LONG_ANSWERS


async def test_a_calibrated_decode_without_a_content_free_prompt_is_refused() -> None:
    engine = LlamaEngine("judge", n_ctx=2048, n_seq_max=2)
    await engine.start()
    try:
        await one(
            engine,
            request("q", "j.prefill", Op.LLM_PREFILL, template=TEMPLATE, inputs={"q": "Hi?"}),
        )
        decode = request(
            "q", "j.decode", Op.LLM_DECODE, max_tokens=4, choices=["yes", "no"], calibrate=True
        )
        with pytest.raises(EngineError, match="needs its prefills' 'content_free' param"):
            await one(engine, decode)
    finally:
        await engine.close()
