"""The remote LLM engine against a real server: llama-cpp-python's ``llama_cpp.server``
(not llama.cpp's C++ ``llama-server``) with the shipped SmolLM2, on loopback.

Evidence comes from the server itself: its verbose log prints ``Llama.generate: N
prefix-match hit`` when a request reuses the KV of the one before, and ``Disconnected
from client`` when a streamed request ends because the client went away. This server
reports no cached-token usage field, so the log is the only measure of the cache hit.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from remote_servers import MODEL_ALIAS, LlamaServer

from primflow.engines.base import EngineError, EngineRequest, Outputs
from primflow.engines.remote import ClientSettings, RemoteLLMEngine
from primflow.graph.ir import Op

pytestmark = [pytest.mark.remote, pytest.mark.engines]

SYSTEM = "You are a concise assistant."
QUESTION = "Question: What is a vector index used for?\nWrite three search queries.\n"
LOG_WAIT_S = 10.0


def engine_for(server: LlamaServer, name: str = "llm") -> RemoteLLMEngine:
    settings = ClientSettings(server.base_url, read_timeout_s=60.0, max_concurrent_requests=4)
    return RemoteLLMEngine(name, settings, MODEL_ALIAS, dialect="llama_cpp_python")


def phase(
    query: str,
    node: str,
    op: Op,
    params: dict[str, object],
    inputs: dict[str, object] | None = None,
) -> EngineRequest:
    return EngineRequest(query, node, op, inputs or {}, params, llm_request_id=f"{query}/call")


def prefill(query: str, content: str) -> EngineRequest:
    return phase(query, "prefill", Op.LLM_PREFILL, {"template": content, "system": SYSTEM})


async def wait_for_log(server: LlamaServer, pattern: str, start: int) -> re.Match[str]:
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        found = re.search(pattern, server.log()[start:])
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in the server log:\n{server.log()[start:][-1500:]}")


async def test_partial_decode_items_resolve_before_the_stream_ends(
    llama_server: LlamaServer,
) -> None:
    engine = engine_for(llama_server)
    await engine.start()
    try:
        (ready,) = engine.submit([prefill("items", QUESTION)])
        await ready
        params = {"parser": "json_list", "num_items": 3, "max_tokens": 96}
        parts = [
            phase("items", f"item{i}", Op.LLM_PARTIAL_DECODE, {**params, "index": i})
            for i in range(3)
        ]
        whole = phase("items", "decode", Op.LLM_DECODE, params)
        futures = engine.submit([*parts, whole])
        decode_done_when_item_0: list[bool] = []
        futures[0].add_done_callback(lambda _: decode_done_when_item_0.append(futures[3].done()))
        results: list[Outputs] = [await f for f in futures]
    finally:
        await engine.close()
    assert decode_done_when_item_0 == [False]  # item 0 was out while the stream went on
    items = [r["items"][0] for r in results[:3]]
    assert results[3]["items"] == items and len(items) == 3  # grammar pushed down: 3 items
    assert all(items)


async def test_warm_up_leaves_the_prefix_for_the_full_request(llama_server: LlamaServer) -> None:
    engine = engine_for(llama_server)
    await engine.start()
    start = len(llama_server.log())
    documents = "Documents:\nA vector index finds the nearest embeddings of a query.\n"
    question = "Question: How does HNSW build its graph layers?\n"  # new to the server
    try:
        partial = phase(
            "warm", "p.partial", Op.LLM_PARTIAL_PREFILL, {"template": question, "system": SYSTEM}
        )
        full = phase("warm", "p.full", Op.LLM_FULL_PREFILL, {"template": documents})
        decode = phase("warm", "decode", Op.LLM_DECODE, {"max_tokens": 8})
        futures = engine.submit([partial, full])
        await asyncio.gather(*futures)
        warmed = len(llama_server.log())
        (answer,) = engine.submit([decode])
        assert (await answer)["text"]
    finally:
        await engine.close()
    assert engine.stats()["num_warmups"] == 1
    pattern = r"Llama\.generate: (\d+) prefix-match hit"
    hit = await wait_for_log(llama_server, pattern, warmed)
    # Before the warm-up the server held at most the shared system prompt; after it,
    # the full request reuses system + question too (all of the warm-up but its footer).
    before = [int(n) for n in re.findall(pattern, llama_server.log()[start:warmed])]
    num_question_words = len(question.split())
    assert int(hit.group(1)) >= max(before, default=0) + num_question_words


async def test_abort_closes_the_stream_and_the_server_stops(llama_server: LlamaServer) -> None:
    engine = engine_for(llama_server)
    await engine.start()
    start = len(llama_server.log())
    first_text = asyncio.Event()
    try:
        (ready,) = engine.submit([prefill("abort", "Write a very long story about a river.")])
        await ready
        decode = phase("abort", "decode", Op.LLM_DECODE, {"max_tokens": 400, "ignore_eos": True})
        decode.on_text = lambda _: first_text.set()
        (future,) = engine.submit([decode])
        await asyncio.wait_for(first_text.wait(), timeout=60)
        engine.abort("abort")
        assert future.cancelled()
        await wait_for_log(llama_server, r"Disconnected from client", start)
        # The server is free again: a short request right after is served.
        (ready,) = engine.submit([prefill("after", "Say hi.")])
        await ready
        (short,) = engine.submit([phase("after", "decode", Op.LLM_DECODE, {"max_tokens": 4})])
        assert isinstance((await short)["text"], str)
    finally:
        await engine.close()
    # It never ran the 400 tokens it was asked for.
    runs = [int(n) for n in re.findall(r"eval time =.*?/\s+(\d+) runs", llama_server.log()[start:])]
    assert all(n < 400 for n in runs)


async def test_killed_server_fails_its_queries_clearly_and_others_go_on(
    llama_server: LlamaServer, doomed_server: LlamaServer
) -> None:
    doomed, healthy = engine_for(doomed_server, "llm"), engine_for(llama_server, "judge")
    await asyncio.gather(doomed.start(), healthy.start())
    first_text = asyncio.Event()
    try:
        await asyncio.gather(*doomed.submit([prefill("dead", "Write a long story.")]))
        decode = phase("dead", "answer", Op.LLM_DECODE, {"max_tokens": 300, "ignore_eos": True})
        decode.on_text = lambda _: first_text.set()
        (dying,) = doomed.submit([decode])
        await asyncio.wait_for(first_text.wait(), timeout=60)
        doomed_server.kill()
        with pytest.raises(EngineError) as caught:
            await dying
        await asyncio.gather(*healthy.submit([prefill("alive", "Say hello.")]))
        (alive,) = healthy.submit([phase("alive", "d", Op.LLM_DECODE, {"max_tokens": 4})])
        assert isinstance((await alive)["text"], str)
    finally:
        await asyncio.gather(doomed.close(), healthy.close())
    message = str(caught.value)
    assert caught.value.engine == "llm" and caught.value.node == "answer"
    assert doomed_server.base_url in message and "stream" in message


async def test_wrong_url_or_model_fails_at_start(llama_server: LlamaServer) -> None:
    wrong_model = RemoteLLMEngine(
        "llm", ClientSettings(llama_server.base_url), "no-such-model", dialect="llama_cpp_python"
    )
    with pytest.raises(EngineError, match=r"does not serve model 'no-such-model'.*smollm2"):
        await wrong_model.start()
    await wrong_model.close()
    refused = RemoteLLMEngine(
        "llm", ClientSettings("http://127.0.0.1:9", max_retries=0), MODEL_ALIAS
    )
    with pytest.raises(EngineError, match=r"127\.0\.0\.1:9/v1/models: connection refused"):
        await refused.start()
    await refused.close()


async def test_a_constrained_choice_answers_exactly_one_of_the_choices(
    llama_server: LlamaServer,
) -> None:
    # Choices no model would write unconstrained: only the pushed-down grammar gives one.
    choices = ["zebra-41", "quokka-07"]
    engine = engine_for(llama_server)
    await engine.start()
    try:
        (ready,) = engine.submit([prefill("choice", "Is the sky blue? Answer yes or no.\n")])
        await ready
        decode = phase("choice", "decode", Op.LLM_DECODE, {"choices": choices, "max_tokens": 8})
        (answer,) = engine.submit([decode])
        text = (await answer)["text"]
    finally:
        await engine.close()
    assert text in choices
