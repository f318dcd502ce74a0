"""The LLM engine on the real SmolLM2-135M-Instruct (llama.cpp): batching, partial
prefill, prefix reuse, partial decode, grammar, abort and bad input.

Numerics are not bit-identical across batch shapes (float rounding), so batched vs
sequential runs are compared by greedy top-1 agreement, never bitwise. Split prefill
is compared exactly: it is bit-exact on SmolLM2 with the engine's defaults (flash
attention on, prompt steps padded to 64 rows; off, a last chunk of >= 8 tokens does it).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from llm_calls import DOCUMENT, SYSTEM, generate, one, request, wait_until

from primflow.engines.base import EngineError
from primflow.engines.llm import LlamaEngine, LLMState
from primflow.engines.placement import CoreBudget
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    # One thread: other engines and test workers share the 2 cores, and an oversubscribed
    # 2-thread OpenMP llama.cpp can stall for seconds per step.
    eng = LlamaEngine("llm-test", n_ctx=2048, n_seq_max=16, n_threads=1)
    yield eng
    asyncio.run(eng.close())


async def test_answers_a_simple_question(engine):
    result = await generate(engine, "q-paris", "What is the capital of France?", max_tokens=24)
    assert "Paris" in result["text"]


async def test_streamed_text_equals_the_final_text(engine):
    chunks: list[str] = []
    result = await generate(engine, "q-stream", "Say hello in French.", on_text=chunks.append)
    await asyncio.sleep(0)  # on_text calls were scheduled before the future resolved
    assert chunks and "".join(chunks) == result["text"]


async def test_batched_and_sequential_generation_agree(engine):
    questions = [
        "What is the capital of France?",
        "Name a primary colour.",
        "What do bees make?",
        "How many legs does a spider have?",
        "What is the opposite of hot?",
        "Which planet do we live on?",
    ]
    sequential = [
        (await generate(engine, f"seq-{i}", q, max_tokens=12))["text"]
        for i, q in enumerate(questions)
    ]
    before = engine.stats()
    batched = await asyncio.gather(
        *(generate(engine, f"bat-{i}", q, max_tokens=12) for i, q in enumerate(questions))
    )
    after = engine.stats()
    texts = [r["text"] for r in batched]
    # The requests shared llama steps (continuous batching: they carry no query start, so
    # they form one step group). A step feeds back at most one token per sequence, so
    # decoded tokens beyond the number of steps are sequences that decoded beside another
    # one in the same step; alone, each step would decode at most one token.
    num_steps = after["num_steps"] - before["num_steps"]
    num_decoded = after["num_decoded_tokens"] - before["num_decoded_tokens"]
    assert num_decoded - num_steps >= 2 * len(questions), (num_decoded, num_steps)
    # Top-1 agreement: the first words always agree; most answers agree entirely.
    assert all(a.split()[:2] == b.split()[:2] for a, b in zip(sequential, texts, strict=True))
    assert sum(a == b for a, b in zip(sequential, texts, strict=True)) >= len(questions) - 2


PREFIX = "Read the passage, then answer the question.\nQuestion: How long is the Zorblat river?\n"
SUFFIX = "Passage: {doc}\nAnswer with the number of kilometres."


async def one_shot_answer(engine: LlamaEngine, query: str) -> tuple[dict[str, Any], str]:
    state = await one(
        engine,
        request(
            query,
            "prefill",
            Op.LLM_PREFILL,
            template=PREFIX + SUFFIX,
            system=SYSTEM,
            inputs={"doc": DOCUMENT},
        ),
    )
    text = (await one(engine, request(query, "decode", Op.LLM_DECODE, max_tokens=20)))["text"]
    engine.release(query)
    return state, text


async def split_answer(engine: LlamaEngine, query: str, between: bool) -> tuple[dict, dict, str]:
    before = engine.stats()
    partial = await one(
        engine, request(query, "partial", Op.LLM_PARTIAL_PREFILL, template=PREFIX, system=SYSTEM)
    )
    # The prefix was really in the KV cache (computed or reused) when the phase resolved.
    after = engine.stats()
    done = sum(after[k] - before[k] for k in ("num_prefilled_tokens", "num_reused_tokens"))
    assert done == partial["state"].num_tokens
    if between:  # an unrelated request runs while the prefix waits in the KV cache
        await generate(engine, f"{query}-between", "Name a fruit.", max_tokens=6)
    full = await one(
        engine,
        request(
            query,
            "full",
            Op.LLM_FULL_PREFILL,
            template=SUFFIX,
            inputs={"doc": DOCUMENT, "state": partial["state"]},
        ),
    )
    text = (await one(engine, request(query, "decode", Op.LLM_DECODE, max_tokens=20)))["text"]
    engine.release(query)
    return partial, full, text


async def test_partial_prefill_then_rest_equals_one_shot_exactly():
    """Same KV layout (fresh engines): split prefill is bit-exact, so greedy text is equal."""
    engines = [
        LlamaEngine(f"llm-exact-{i}", n_ctx=1024, n_threads=1, min_reuse_tokens=10**6)
        for i in range(2)
    ]
    try:
        one_shot, expected = await one_shot_answer(engines[0], "q-one")
        partial, full, text = await split_answer(engines[1], "q-split", between=False)
        # the default: flash attention on, and the short opening's step was padded
        assert engines[1].config.flash_attn and engines[1].stats()["num_pad_tokens"] > 0
    finally:
        for eng in engines:
            await eng.close()
    assert isinstance(partial["state"], LLMState)
    assert partial["state"].num_tokens < full["state"].num_tokens == one_shot["state"].num_tokens
    assert text == expected and "412" in text


async def test_partial_prefill_with_other_work_in_between_agrees_top1(engine):
    """Interleaved requests move the suffix to other KV cells, which changes float
    rounding: compare top-1 agreement, not bits."""
    _, expected = await one_shot_answer(engine, "q-one")
    _, _, text = await split_answer(engine, "q-split", between=True)
    assert text.split()[:3] == expected.split()[:3] and "412" in text


async def test_full_prefill_without_partial_is_an_error(engine):
    with pytest.raises(EngineError, match="partial prefill first"):
        await one(engine, request("q-nofull", "full", Op.LLM_FULL_PREFILL, template="x"))


async def test_shared_document_is_prefilled_once(engine):
    template = "Passage: {doc}\nQuestion: {q}"
    questions = [
        "Where is the source?",
        "What do farmers grow?",
        "When does it freeze?",
        "Which town?",
    ]
    doc_tokens = len(DOCUMENT) // 6  # a loose lower bound on the document's token count
    before = engine.stats()
    results = await asyncio.gather(
        *(
            one(
                engine,
                request(
                    f"q-doc-{i}",
                    "prefill",
                    Op.LLM_PREFILL,
                    template=template,
                    system=SYSTEM,
                    inputs={"doc": DOCUMENT, "q": q},
                ),
            )
            for i, q in enumerate(questions)
        )
    )
    after = engine.stats()
    for i in range(len(questions)):
        engine.release(f"q-doc-{i}")
    total_prompt = sum(r["state"].num_tokens for r in results)
    prefilled = after["num_prefilled_tokens"] - before["num_prefilled_tokens"]
    reused = after["num_reused_tokens"] - before["num_reused_tokens"]
    assert after["num_prefix_hits"] - before["num_prefix_hits"] >= len(questions) - 1
    assert reused >= (len(questions) - 1) * doc_tokens
    assert prefilled + reused == total_prompt
    assert prefilled < total_prompt - (len(questions) - 1) * doc_tokens


async def test_abort_frees_kv_and_cancels(engine):
    started = asyncio.Event()
    await one(
        engine,
        request(
            "q-abort",
            "prefill",
            Op.LLM_PREFILL,
            template="Write a long story about {x}.",
            system=SYSTEM,
            inputs={"x": "a dragon"},
        ),
    )
    [decode] = engine.submit(
        [
            request(
                "q-abort", "decode", Op.LLM_DECODE, max_tokens=400, on_text=lambda _: started.set()
            )
        ]
    )
    await started.wait()
    num_requests = engine.stats()["num_requests"]
    engine.abort("q-abort")
    assert decode.cancelled()
    [late] = engine.submit([request("q-abort", "late", Op.LLM_DECODE, max_tokens=4)])
    assert late.cancelled()  # late work of an aborted query is refused
    await wait_until(lambda: engine.stats()["num_requests"] == num_requests - 1)
    positions = await engine.kv_positions()
    used_slots = [slot for slot, pos in positions.items() if pos >= 0]
    # Only the engine's prefix cache (and other tests' live requests) hold KV now.
    assert len(used_slots) == engine.stats()["num_cached_prefixes"] + engine.health().num_running
    # The engine keeps serving after the abort.
    assert (
        "Paris"
        in (await generate(engine, "q-after-abort", "What is the capital of France?", 20))["text"]
    )


async def test_grammar_makes_expansion_a_json_list_and_items_stream(engine):
    await one(
        engine,
        request(
            "q-exp",
            "prefill",
            Op.LLM_PREFILL,
            system=SYSTEM,
            inputs={"q": "how to bake bread"},
            template="Write 3 web search queries for: {q}. Reply with a JSON list of strings.",
        ),
    )
    text_so_far: list[str] = []
    common = {"num_items": 3, "parser": "json_list", "max_tokens": 64}
    partials = engine.submit(
        [request("q-exp", f"pd{i}", Op.LLM_PARTIAL_DECODE, index=i, **common) for i in range(3)]
        + [request("q-exp", "decode", Op.LLM_DECODE, on_text=text_so_far.append, **common)]
    )
    seen_at_resolution: list[str] = []
    for future in partials[:3]:
        future.add_done_callback(lambda _: seen_at_resolution.append("".join(text_so_far)))
    *items, final = await asyncio.gather(*partials)
    engine.release("q-exp")
    parsed = json.loads(final["text"])
    assert (
        isinstance(parsed, list)
        and len(parsed) == 3
        and all(isinstance(s, str) and s for s in parsed)
    )
    assert final["items"] == parsed
    assert [r["items"] for r in items] == [[s] for s in parsed]
    assert [r["state"].item_index for r in items] == [0, 1, 2]
    # Items 0 and 1 were handed out while the list was still being generated.
    assert all("]" not in seen for seen in seen_at_resolution[:2])


async def test_missing_items_resolve_empty_instead_of_hanging(engine):
    await one(
        engine,
        request("q-few", "prefill", Op.LLM_PREFILL, system=SYSTEM, template="Name one colour."),
    )
    params = {"num_items": 5, "parser": "lines", "max_tokens": 6}
    last = await one(engine, request("q-few", "pd4", Op.LLM_PARTIAL_DECODE, index=4, **params))
    decode = await one(engine, request("q-few", "decode", Op.LLM_DECODE, **params))
    engine.release("q-few")
    assert last["items"] == [] and len(decode["items"]) < 5


async def test_stop_strings(engine):
    stopped = await generate(engine, "q-stop", "Count from one to ten in words.", 40, stop=[","])
    assert stopped["text"] and "," not in stopped["text"]


async def test_seeded_sampling_repeats():
    texts = []
    for i in range(2):
        eng = LlamaEngine(f"llm-seed-{i}", n_ctx=512, n_threads=1)
        try:
            result = await generate(eng, "q-seed", "Tell me a colour.", 12, temperature=0.9, seed=7)
        finally:
            await eng.close()
        texts.append(result["text"])
    assert texts[0] == texts[1] and texts[0]


async def test_bad_input_fails_that_request_and_the_engine_keeps_serving(engine):
    with pytest.raises(EngineError, match="prompt is empty"):
        await one(
            engine, request("q-bad", "prefill", Op.LLM_PREFILL, template="{q}", inputs={"q": "  "})
        )
    with pytest.raises(EngineError, match="context holds at most"):
        await one(
            engine,
            request(
                "q-bad",
                "long",
                Op.LLM_PREFILL,
                template="{q}",
                rid="q-bad/long",
                inputs={"q": "word " * 3000},
            ),
        )
    with pytest.raises(EngineError, match="needs q"):
        await one(
            engine, request("q-bad", "missing", Op.LLM_PREFILL, template="{q}", rid="q-bad/m")
        )
    with pytest.raises(EngineError, match="no open LLM request"):
        await one(engine, request("q-bad", "decode", Op.LLM_DECODE, rid="q-bad/none"))
    prompt = {
        "template": "What is the capital of {c}?",
        "system": SYSTEM,
        "inputs": {"c": "France"},
    }
    await one(engine, request("q-bad", "ok", Op.LLM_PREFILL, rid="q-bad/ok", **prompt))
    with pytest.raises(EngineError, match="max_tokens must be >= 1"):
        await one(engine, request("q-bad", "d", Op.LLM_DECODE, rid="q-bad/ok", max_tokens=0))
    with pytest.raises(EngineError, match="unknown decode parser 'yaml'"):
        await one(engine, request("q-bad", "d", Op.LLM_DECODE, rid="q-bad/ok", parser="yaml"))
    # The request survives its bad decodes; a good decode still runs.
    good = await one(engine, request("q-bad", "d", Op.LLM_DECODE, rid="q-bad/ok", max_tokens=20))
    assert "Paris" in good["text"]
    engine.release("q-bad")
    assert engine.health().is_healthy
    assert (
        "Paris" in (await generate(engine, "q-good", "What is the capital of France?", 20))["text"]
    )


async def test_unreadable_model_path_is_a_clear_error(tmp_path):
    bad = LlamaEngine("llm-bad", model_path=str(tmp_path / "missing.gguf"))
    with pytest.raises(EngineError, match=r"missing\.gguf' does not exist"):
        await bad.start()
    [future] = bad.submit([request("q", "prefill", Op.LLM_PREFILL, template="hi")])
    with pytest.raises(EngineError, match="could not start"):
        await future
    assert not bad.health().is_healthy
    await bad.close()
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="not a GGUF file"):
        await LlamaEngine("llm-bad2", model_path=str(not_gguf)).start()


async def test_two_engines_side_by_side_and_thread_count(engine):
    other = LlamaEngine("llm-other", n_ctx=1024, n_seq_max=4, n_threads=1)
    try:
        # One OS thread makes every llama call of the process (thread.py).
        ident = await engine.thread_ident()
        assert ident == await other.thread_ident() != threading.get_ident()
        a, b = await asyncio.gather(
            generate(engine, "q-side-a", "What is the capital of France?", 20),
            generate(other, "q-side-b", "What is the capital of France?", 20),
        )
        assert "Paris" in a["text"] and "Paris" in b["text"]
        assert other.stats()["num_threads"] == 1
        other.set_num_threads(2)
        await other.kv_positions()  # commands run in order: the thread count is set now
        assert other.stats()["num_threads"] == 2
        other.set_num_threads(1)
        await generate(other, "q-side-c", "Name a fruit.", 4)
        assert other.stats()["num_threads"] == 1
        assert 0.0 <= other.health().load <= 1.0
    finally:
        await other.close()


async def test_core_budget_sets_threads_per_step_and_tracks_busy():
    budget = CoreBudget(num_cores=2)
    budget.begin("embedder")  # another engine is busy: the LLM gets 1 of the 2 cores
    eng = LlamaEngine("llm", n_ctx=512, n_threads=2, budget=budget)
    try:
        result = await generate(eng, "q-budget", "Name a fruit.", 4)
        assert result["text"]
        assert eng.stats()["num_threads"] == 1
        await wait_until(lambda: budget.busy_engines() == ["embedder"])  # idle LLM: not busy
    finally:
        budget.end("embedder")
        await eng.close()
