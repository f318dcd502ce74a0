"""Dialect fields against the fake OpenAI-compatible server (fake_openai.py): what each
dialect sends and reads. The real server's behaviour is tested in test_llama_server.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from fake_openai import FakeServer, prefill_and_decode

from primflow.engines.base import USAGE, EngineError, EngineRequest, TokenUsage
from primflow.engines.remote import ClientSettings, RemoteEmbedder, RemoteLLMEngine, RemoteReranker
from primflow.graph.ir import Op
from primflow.values import Chunk, Hit

pytestmark = pytest.mark.remote


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


def llm(fake: FakeServer, dialect: str, api: str = "chat") -> RemoteLLMEngine:
    return RemoteLLMEngine(
        "llm", ClientSettings(fake.base_url), "fake-model", dialect=dialect, api=api
    )


async def run_split_call(engine: RemoteLLMEngine, params: dict[str, Any]) -> list[Any]:
    """partial prefill -> full prefill -> 3 partial decodes + decode, rank 2.5 s."""

    def phase(node: str, op: Op, p: dict[str, Any], inputs: dict[str, Any]) -> EngineRequest:
        return EngineRequest("q", node, op, inputs, p, llm_request_id="q/c", priority=2.5)

    await engine.start()
    partial = phase("p", Op.LLM_PARTIAL_PREFILL, {"template": "Q: {q}\n"}, {"q": "why"})
    full = phase("f", Op.LLM_FULL_PREFILL, {"template": "Docs: {d}\n"}, {"d": "none"})
    await asyncio.gather(*engine.submit([partial, full]))
    decodes = [phase(f"i{i}", Op.LLM_PARTIAL_DECODE, {**params, "index": i}, {}) for i in range(3)]
    decodes.append(phase("d", Op.LLM_DECODE, params, {}))
    results = await asyncio.gather(*engine.submit(decodes))
    await engine.close()
    return results


LIST_PARAMS = {"parser": "json_list", "num_items": 3, "max_tokens": 64}


async def test_vllm_sends_priority_lowest_first_and_guided_json(fake: FakeServer) -> None:
    engine = llm(fake, "vllm", api="completions")
    results = await run_split_call(engine, LIST_PARAMS)
    warmup, decode = fake.bodies_at("/v1/completions")
    assert warmup["max_tokens"] == 1 and warmup["user"] == "primflow-warmup"
    assert warmup["prompt"] == "Q: why\n"  # the exact text prefix of the full prompt
    assert decode["prompt"] == "Q: why\nDocs: none\n" and decode["stream"] is True
    assert decode["priority"] == -2500  # vLLM serves lower values first
    assert decode["guided_json"]["minItems"] == 3
    assert [r["items"] for r in results[:3]] == [["alpha"], ["beta"], ["gamma"]]
    # The warm-up's usage; the decode closed its stream once the list closed, before the
    # server's final usage event.
    assert engine.stats()["num_cached_prompt_tokens"] == 12
    assert engine.stats()["num_early_closes"] == 1


async def test_cached_tokens_are_read_once_from_usage_or_timings(fake: FakeServer) -> None:
    engine = llm(fake, "llama_cpp")
    await engine.start()
    prefill = EngineRequest(
        "q", "p", Op.LLM_PREFILL, {}, {"template": "Say hi"}, llm_request_id="c"
    )
    decode = EngineRequest("q", "d", Op.LLM_DECODE, {}, {"max_tokens": 8}, llm_request_id="c")
    await asyncio.gather(*engine.submit([prefill]))
    (result,) = await asyncio.gather(*engine.submit([decode]))
    await engine.close()
    assert result["text"] == '["alpha", "beta", "gamma"]'
    # usage.prompt_tokens_details wins; timings.cache_n (the same count on llama.cpp) is
    # read only when usage has no details.
    assert engine.stats()["num_cached_prompt_tokens"] == 12
    # The decode carries the request's usage (its prefill ran inside it).
    assert result[USAGE] == TokenUsage(num_input_tokens=20, num_output_tokens=3)


async def test_sglang_priority_and_response_format(fake: FakeServer) -> None:
    await run_split_call(llm(fake, "sglang"), LIST_PARAMS)
    _, decode = fake.bodies_at("/v1/chat/completions")
    assert decode["priority"] == 2500
    assert decode["response_format"]["json_schema"]["schema"]["maxItems"] == 3
    assert decode["messages"][-1] == {"role": "user", "content": "Q: why\nDocs: none\n"}


async def test_llama_cpp_sends_cache_prompt_and_a_grammar(fake: FakeServer) -> None:
    await run_split_call(llm(fake, "llama_cpp"), {**LIST_PARAMS, "ignore_eos": False})
    warmup, decode = fake.bodies_at("/v1/chat/completions")
    assert warmup["cache_prompt"] is True and decode["cache_prompt"] is True
    assert decode["grammar"].startswith("root ::=") and "priority" not in decode


CHOICE_PARAMS = {"choices": ["yes", "no"], "max_tokens": 2}


@pytest.mark.parametrize(
    ("dialect", "field", "expected"),
    [
        ("vllm", "guided_choice", ["yes", "no"]),
        ("sglang", "regex", "(yes|no)"),
        ("llama_cpp", "grammar", 'root ::= "yes" | "no"\n'),
        ("llama_cpp_python", "grammar", 'root ::= "yes" | "no"\n'),
    ],
)
async def test_a_constrained_choice_goes_to_the_server_in_its_own_field(
    fake: FakeServer, dialect: str, field: str, expected: Any
) -> None:
    await prefill_and_decode(llm(fake, dialect), CHOICE_PARAMS)
    decode = fake.bodies_at("/v1/chat/completions")[-1]
    assert decode[field] == expected
    others = {"guided_choice", "regex", "grammar", "guided_json", "response_format"} - {field}
    assert not others & set(decode)


@pytest.mark.parametrize("dialect", ["openai", "ollama"])
async def test_a_choice_is_left_unconstrained_where_the_api_has_no_field(
    fake: FakeServer, dialect: str
) -> None:
    await prefill_and_decode(llm(fake, dialect), CHOICE_PARAMS)
    decode = fake.bodies_at("/v1/chat/completions")[-1]
    assert not {"guided_choice", "regex", "grammar", "response_format"} & set(decode)


SCHEMA = {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3}


@pytest.mark.parametrize(
    ("dialect", "field", "expected"),
    [
        ("llama_cpp", "json_schema", SCHEMA),
        ("llama_cpp_python", "response_format", {"type": "json_object", "schema": SCHEMA}),
    ],
)
async def test_gbnf_servers_convert_a_json_schema_themselves(
    fake: FakeServer, dialect: str, field: str, expected: dict[str, Any]
) -> None:
    await run_split_call(llm(fake, dialect), {**LIST_PARAMS, "json_schema": SCHEMA})
    _, decode = fake.bodies_at("/v1/chat/completions")
    assert decode[field] == expected and "grammar" not in decode


async def test_a_stream_cut_without_finish_reason_fails_clearly(fake: FakeServer) -> None:
    fake.is_cutting_streams = True
    engine = llm(fake, "llama_cpp_python")
    await engine.start()
    prefill = EngineRequest("q", "p", Op.LLM_PREFILL, {}, {"template": "Hi"}, llm_request_id="c")
    decode = EngineRequest("q", "d", Op.LLM_DECODE, {}, {"max_tokens": 8}, llm_request_id="c")
    await asyncio.gather(*engine.submit([prefill]))
    (future,) = engine.submit([decode])
    with pytest.raises(EngineError, match=r"without a finish_reason.*interrupt_requests false"):
        await future
    await engine.close()


async def test_openai_dialect_sends_no_warm_up_and_no_extra_fields(fake: FakeServer) -> None:
    await run_split_call(llm(fake, "openai"), LIST_PARAMS)
    (decode,) = fake.bodies_at("/v1/chat/completions")
    assert not {"priority", "guided_json", "grammar", "cache_prompt"} & set(decode)


async def test_embeddings_go_out_as_one_request_per_server_batch(fake: FakeServer) -> None:
    engine = RemoteEmbedder(
        "embedder", ClientSettings(fake.base_url), "fake-model", max_batch_items=3
    )
    await engine.start()
    requests = [
        EngineRequest("q0", "e0", Op.EMBED, {"items": ["a", "bb", Chunk("ccc", "s", 0)]}, {}),
        EngineRequest("q1", "e1", Op.EMBED, {"items": ["bb", "dddd"]}, {}),
    ]
    first, second = await asyncio.gather(*engine.submit(requests))
    await engine.close()
    bodies = fake.bodies_at("/v1/embeddings")
    assert [b["input"] for b in bodies] == [["a", "bb", "ccc"], ["dddd"]]  # deduped, split at 3
    assert np.allclose(np.linalg.norm(first["vectors"], axis=1), 1.0)
    assert np.allclose(first["vectors"][1], second["vectors"][0])


@pytest.mark.parametrize("shape", ["cohere", "tei"])
async def test_rerank_shapes_order_hits_by_server_score(fake: FakeServer, shape: str) -> None:
    engine = RemoteReranker("reranker", ClientSettings(fake.base_url), "fake-model", shape=shape)
    await engine.start()
    hits = [Hit(Chunk(text, "s", i), 0.0) for i, text in enumerate(["bb", "dddd", "a"])]
    inputs = {"query": "q", "hits": hits}
    (result,) = await asyncio.gather(
        *engine.submit([EngineRequest("q", "r", Op.RERANK, inputs, {"top_k": 2})])
    )
    await engine.close()
    assert [h.chunk.text for h in result["hits"]] == ["dddd", "bb"]
    assert result["hits"][0].score == 4.0
