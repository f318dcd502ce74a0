"""ignore_eos on the real SmolLM2-135M-Instruct (llama.cpp): an answer runs to max_tokens.

Generated tokens are counted with the engine's ``num_decoded_tokens`` counter: every
sampled token but the last is fed back, so a generation of ``n`` kept tokens that ends
at max_tokens feeds back ``n - 1``; one that ends at an end-of-generation token feeds
back all ``n`` kept tokens (the end token is sampled from the last one's logits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llm_calls import generate

from primflow.engines.base import EngineError
from primflow.engines.llm import LlamaEngine
from primflow.engines.llm.sampling import SamplingParams

pytestmark = pytest.mark.engines

# SmolLM2 answers this in one short sentence (7 tokens), far below MAX_TOKENS.
QUESTION = "What is the capital of France?"
MAX_TOKENS = 24
SPECIAL_MARKS = ("<|", "|>", "im_end", "im_start", "endoftext")


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    # One thread, as in test_llm_engine.py: the 2 cores are shared.
    eng = LlamaEngine("llm-ignore-eos", n_ctx=1024, n_seq_max=4, n_threads=1)
    yield eng
    asyncio.run(eng.close())


async def _decoded(engine: LlamaEngine, query: str, **decode: object) -> tuple[str, int]:
    """The answer's text and how many generated tokens were fed back."""
    before = engine.stats()["num_decoded_tokens"]
    result = await generate(engine, query, QUESTION, max_tokens=MAX_TOKENS, **decode)
    return result["text"], engine.stats()["num_decoded_tokens"] - before


async def test_without_it_the_answer_stops_early(engine):
    text, num_fed = await _decoded(engine, "q-natural")
    assert "Paris" in text
    assert num_fed < MAX_TOKENS - 1  # ended at an end-of-generation token


async def test_with_it_the_answer_runs_to_exactly_max_tokens(engine):
    chunks: list[str] = []
    text, num_fed = await _decoded(engine, "q-forced", ignore_eos=True, on_text=chunks.append)
    natural, _ = await _decoded(engine, "q-natural-2")
    assert num_fed == MAX_TOKENS - 1  # MAX_TOKENS sampled, the last never fed back
    assert "Paris" in text and len(text) > len(natural)
    assert not any(mark in text for mark in SPECIAL_MARKS), text
    await asyncio.sleep(0)  # on_text calls were scheduled before the future resolved
    assert "".join(chunks) == text


async def test_a_stop_string_still_ends_it(engine):
    # The natural answer is one line; past its end token the model starts a new turn.
    _, num_fed_natural = await _decoded(engine, "q-stop-natural")
    text, num_fed = await _decoded(engine, "q-stop", ignore_eos=True, stop=["\n"])
    assert "Paris" in text and "\n" not in text
    assert num_fed_natural < num_fed < MAX_TOKENS - 1  # went past the end token, then stopped


async def test_a_structured_decode_refuses_it(engine):
    with pytest.raises(EngineError, match="ignore_eos"):
        await generate(
            engine,
            "q-structured",
            QUESTION,
            max_tokens=MAX_TOKENS,
            parser="json_list",
            num_items=2,
            ignore_eos=True,
        )
    engine.release("q-structured")


async def test_a_non_bool_value_is_refused(engine):
    with pytest.raises(EngineError, match="ignore_eos must be true or false"):
        await generate(engine, "q-bad", QUESTION, max_tokens=MAX_TOKENS, ignore_eos="yes")
    engine.release("q-bad")


def test_sampling_params_read_it_default_off():
    assert SamplingParams.from_params({}).ignore_eos is False
    assert SamplingParams.from_params({"ignore_eos": True}).ignore_eos is True
    with pytest.raises(ValueError, match="ignore_eos"):
        SamplingParams.from_params({"ignore_eos": 1})
