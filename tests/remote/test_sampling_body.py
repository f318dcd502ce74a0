"""Per-query sampling reaches a remote LLM as OpenAI request fields: the decode params
lowering writes from QueryConfig (temperature, top_p, seed, stop, max_tokens; top_k
only for dialects that take it) are in the streamed request body the fake server sees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fake_openai import FakeServer, prefill_and_decode

from primflow.api import Generate, Query, QueryConfig, build_template
from primflow.api.lower import lower
from primflow.engines.base import EngineError
from primflow.engines.remote import ClientSettings, RemoteLLMEngine
from primflow.graph.ops import CHOICE_SCORES

pytestmark = pytest.mark.remote


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


def _decode_params(**config: Any) -> dict[str, Any]:
    generate = Generate(prompt="Say {question}", reads={"question": "question"})
    template = build_template("say", generate, outputs={"answer": "text"})
    graph = lower(template, Query("hi", config=QueryConfig(**config)))
    return dict(graph.node("generate.decode").params)


async def _decode(fake: FakeServer, dialect: str, params: dict[str, Any]) -> dict[str, Any]:
    engine = RemoteLLMEngine("llm", ClientSettings(fake.base_url), "fake-model", dialect=dialect)
    return await prefill_and_decode(engine, params)


async def test_sampling_fields_go_out_with_the_decode(fake: FakeServer) -> None:
    params = _decode_params(
        temperature=0.7, top_p=0.9, sample_top_k=20, seed=3, stop=["END"], max_tokens=12
    )
    await _decode(fake, "vllm", params)
    (body,) = fake.bodies_at("/v1/chat/completions")
    sent = {k: body[k] for k in ("temperature", "top_p", "top_k", "seed", "stop", "max_tokens")}
    assert sent == {
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "seed": 3,
        "stop": ["END"],
        "max_tokens": 12,
    }


async def test_greedy_is_temperature_zero_and_openai_gets_no_top_k(fake: FakeServer) -> None:
    await _decode(fake, "openai", _decode_params())
    await _decode(fake, "openai", _decode_params(temperature=1.0, seed=4))
    greedy, sampled = fake.bodies_at("/v1/chat/completions")
    assert greedy["temperature"] == 0.0 and "seed" not in greedy
    assert sampled["temperature"] == 1.0 and sampled["seed"] == 4
    assert "top_k" not in greedy and "top_k" not in sampled
    with pytest.raises(EngineError, match="the openai dialect takes no top_k"):
        await _decode(fake, "openai", _decode_params(temperature=1.0, sample_top_k=5))


async def test_a_calibrated_judge_falls_back_to_the_grammar(
    fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A server returns no log-probabilities of given answers: the calibrated choice is
    sent with the grammar, once logged, and comes back without scores."""
    params = {"max_tokens": 4, "choices": ["yes", "no"], "calibrate": True, "stop": ["\n"]}
    with caplog.at_level("WARNING", logger="primflow.engines.remote.llm"):
        result = await _decode(fake, "llama_cpp", params)
    (body,) = fake.bodies_at("/v1/chat/completions")
    assert body["grammar"] == 'root ::= "yes" | "no"\n'
    assert CHOICE_SCORES not in result
    [warning] = [r.getMessage() for r in caplog.records if "cannot score" in r.getMessage()]
    assert "use the grammar (no calibration, no scores)" in warning
