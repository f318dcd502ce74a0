"""The engine sections of the parity benchmark (bench_parity.py): embedder and LLM
(FAISS: bench_parity_faiss.py).

Each compares one engine with the raw library loop of bench_parity_raw.py on the same
inputs, in paired repeats (the side that goes first alternates; bench_parity_common.py).
``Sides`` holds both: the engine stack in this process, the raw loops in a spawned one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import bench_parity_raw as raw
import numpy as np
from bench_parity_common import paired_stats, passages, questions, summary

from primflow.engines.base import Engine, EngineRequest
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op
from primflow.session.session import Session
from primflow.session.stack import EngineStack

EMBED_SIZES = (100, 650, 2000)
MAX_TOKENS = 32


class Sides:
    """The engine side (this process) and the raw side (a spawned process)."""

    def __init__(self, stack: EngineStack, pool: ProcessPoolExecutor) -> None:
        self.stack = stack
        self.pool = pool
        self.session = Session(stack)
        self._num_queries = 0

    def engine(self, name: str) -> Engine:
        return self.stack.engines[name]

    def query_id(self, tag: str) -> str:
        self._num_queries += 1
        return f"parity-{tag}-{self._num_queries}"

    async def on_raw(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)


async def paired(
    repeats: int,
    run_raw: Callable[[], Awaitable[float]],
    run_engine: Callable[[], Awaitable[float]],
) -> tuple[list[float], list[float]]:
    raw_s: list[float] = []
    engine_s: list[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            raw_s.append(await run_raw())
            engine_s.append(await run_engine())
        else:
            engine_s.append(await run_engine())
            raw_s.append(await run_raw())
    return raw_s, engine_s


# --- embedder ---


async def engine_embed(sides: Sides, texts: list[str]) -> tuple[float, np.ndarray]:
    request = EngineRequest(sides.query_id("embed"), "embed", Op.EMBED, {"items": texts}, {})
    started_s = time.perf_counter()
    [future] = sides.engine("embedder").submit([request])
    vectors = (await future)["vectors"]
    return time.perf_counter() - started_s, vectors


async def embed_section(
    sides: Sides, seed: int, repeats: int, sizes: Sequence[int] = EMBED_SIZES
) -> dict[str, Any]:
    rows = {}
    for size in sizes:
        texts = passages(seed + size, size)
        for batch_size in (32, 64):
            found: dict[str, Any] = {}

            async def run_raw(
                bs: int = batch_size, items: list[str] = texts, out: dict[str, Any] = found
            ) -> float:
                seconds, out["raw"] = await sides.on_raw(raw.timed_embed, items, bs)
                return float(seconds)

            async def run_engine(items: list[str] = texts, out: dict[str, Any] = found) -> float:
                seconds, out["engine"] = await engine_embed(sides, items)
                return seconds

            raw_s, engine_s = await paired(repeats, run_raw, run_engine)
            stats = paired_stats(raw_s, engine_s)
            stats["max_abs_diff"] = float(np.abs(found["raw"] - found["engine"]).max())
            stats["num_passages"] = size
            stats["raw_batch_size"] = batch_size
            name = f"embed {size} passages vs raw batches of {batch_size}"
            print(summary(name, stats) + f" (max |diff| {stats['max_abs_diff']:.1e})", flush=True)
            rows[f"{size}/{batch_size}"] = stats
    return rows


# --- LLM ---


def rag_prompts(seed: int, num: int) -> list[str]:
    """The naive-RAG answer prompt of ``num`` questions, each over 3 passages."""
    contexts = passages(seed, 3 * num, 220, 300)
    return [
        raw.ANSWER_PROMPT.format(
            question=question, context=raw.numbered(contexts[3 * i : 3 * i + 3])
        )
        for i, question in enumerate(questions(num))
    ]


async def engine_call(engine: Engine, query: str, prompt: str, max_tokens: int) -> str:
    prefill = EngineRequest(
        query, "prefill", Op.LLM_PREFILL, {"q": prompt}, {"template": "{q}"}, llm_request_id=query
    )
    decode = EngineRequest(
        query,
        "decode",
        Op.LLM_DECODE,
        {},
        {"max_tokens": max_tokens, "ignore_eos": True},
        llm_request_id=query,
    )
    [prefilled] = engine.submit([prefill])
    await prefilled
    [decoded] = engine.submit([decode])
    text = str((await decoded)["text"])
    engine.abort(query)  # drops its cached prompt too, as the raw side resets
    return text


async def llm_section(sides: Sides, seed: int, repeats: int) -> dict[str, Any]:
    """One request at a time against ``create_chat_completion``, each side with its
    default (``Llama``: flash attention off; the engine: on, prompt steps padded), and
    four at once against the low-level batched loop two ways: llama.cpp's default flash
    attention (auto: on here) against the engine's default, and both off (a second
    engine with ``flash_attn=False`` on the same core budget)."""
    prompts = rag_prompts(seed, 4)
    llm = sides.engine("llm")
    assert isinstance(llm, LlamaEngine)
    llm_off = LlamaEngine(
        "llm_fa_off", config=replace(llm.config, flash_attn=False), budget=sides.stack.budget
    )
    await llm_off.start()

    async def raw_one() -> float:
        seconds, _ = await sides.on_raw(raw.timed_chat, prompts, MAX_TOKENS)
        return float(seconds)

    async def engine_one() -> float:
        started_s = time.perf_counter()
        for prompt in prompts:
            await engine_call(llm, sides.query_id("llm"), prompt, MAX_TOKENS)
        return time.perf_counter() - started_s

    def raw_batched(is_flash_attn: bool) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            found = await sides.on_raw(raw.timed_batched, prompts, MAX_TOKENS, is_flash_attn)
            return float(found[0])

        return run

    def engine_batched(engine: LlamaEngine) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            started_s = time.perf_counter()
            calls = [engine_call(engine, sides.query_id("llm"), p, MAX_TOKENS) for p in prompts]
            await asyncio.gather(*calls)
            return time.perf_counter() - started_s

        return run

    result: dict[str, Any] = {"num_prompts": len(prompts)}
    one = paired_stats(*await paired(repeats, raw_one, engine_one))
    label = "vs create_chat_completion, defaults (Llama FA off, engine FA on)"
    print(summary(f"llm {len(prompts)} requests one at a time {label}", one))
    result["one_at_a_time"] = one
    rows = {
        "batched": ("defaults: raw FA auto (on) vs engine FA on", True, llm),
        "batched_fa_off": ("both FA off", False, llm_off),
    }
    for key, (label, is_raw_fa, engine) in rows.items():
        steps_before = engine.stats()["num_steps"]
        stats = paired_stats(*await paired(repeats, raw_batched(is_raw_fa), engine_batched(engine)))
        await asyncio.sleep(0.05)  # the last step's counters are published just after it
        # The raw loop's llama_decode calls: prompts packed 512 tokens a batch, then 1 a token.
        stats["engine_num_steps_per_run"] = (engine.stats()["num_steps"] - steps_before) / repeats
        print(summary(f"llm {len(prompts)} at once vs low-level batched loop, {label}", stats))
        result[key] = stats
    await llm_off.close()
    return result
