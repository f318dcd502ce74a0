"""One llama.cpp thread per process, measured on the engine: does a second LlamaEngine
alive in the same process slow the first one down?

Each trial runs in a fresh process (libgomp thread teams live as long as the process):
engine A (2 threads) generates ``max_tokens`` tokens for a few prompts; the decode
rate is decoded tokens / decode wall time (prefill excluded). In the ``pair`` trials a
second engine B (same model file) is started and warmed up first and stays alive and
idle while A runs: ``pair_dedicated`` gives each engine its own llama thread (the
engine before the fix), ``pair_shared`` runs both on the process's one llama thread
(the default). The modes alternate, so all see the same machine load. Prints one
result line; saves docs/bench/llm_threads.json.

    .venv/bin/python bench/bench_llm_threads.py [--trials 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from primflow.engines.base import EngineRequest
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "bench"
PROMPTS = [
    "Write a long story about a dragon who learns to bake bread.",
    "Explain in detail how a steam engine works.",
    "Describe a walk through a busy market in the morning.",
]


async def decode_rate(engine: LlamaEngine, max_tokens: int) -> float:
    """Tokens per second of decode alone, one request at a time."""
    num_tokens, seconds = 0, 0.0
    for i, prompt in enumerate(PROMPTS):
        query = f"q{i}"
        prefill = EngineRequest(query, "prefill", Op.LLM_PREFILL, {"q": prompt},
                                {"template": "{q}"}, llm_request_id=query)  # fmt: skip
        await engine.submit([prefill])[0]
        decode = EngineRequest(query, "decode", Op.LLM_DECODE, {}, {"max_tokens": max_tokens},
                               llm_request_id=query)  # fmt: skip
        before = engine.stats()["num_decoded_tokens"]
        start = time.perf_counter()
        await engine.submit([decode])[0]
        seconds += time.perf_counter() - start
        await asyncio.sleep(0.02)  # counters are published just after the last step
        num_tokens += engine.stats()["num_decoded_tokens"] - before
        engine.release(query)
    return num_tokens / seconds


MODES = ("single", "pair_dedicated", "pair_shared")


async def trial_async(mode: str, threads: int, max_tokens: int) -> float:
    dedicated = mode == "pair_dedicated"
    engine = LlamaEngine("a", n_ctx=2048, n_threads=threads, dedicated_thread=dedicated)
    other = None
    if mode != "single":
        other = LlamaEngine("b", n_ctx=2048, n_threads=threads, dedicated_thread=dedicated)
    try:
        await engine.start()
        if other is not None:
            await other.start()  # warm-up: B's thread has called llama.cpp
        return await decode_rate(engine, max_tokens)
    finally:
        for eng in (engine, other):
            if eng is not None:
                await eng.close()


def trial(mode: str, threads: int, max_tokens: int) -> float:
    return asyncio.run(trial_async(mode, threads, max_tokens))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", default="llm_threads.json")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    load_before = os.getloadavg()[0]
    ctx = multiprocessing.get_context("spawn")
    for _ in range(args.trials):
        for mode in MODES:
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                rate = pool.submit(trial, mode, args.threads, args.max_tokens).result()
            rates[mode].append(round(rate, 1))
    median = {mode: statistics.median(rates[mode]) for mode in MODES}
    single = median["single"]
    result: dict[str, Any] = {
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "decode_tok_s": rates,
        "median_tok_s": median,
        "dedicated_over_single": round(median["pair_dedicated"] / single, 3),
        "shared_over_single": round(median["pair_shared"] / single, 3),
        "load_avg_1m_before_after": [load_before, os.getloadavg()[0]],
        "machine": platform.processor() or platform.machine(),
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"decode tok/s at {args.threads} threads: one engine {single:.1f}; with a second "
        f"engine alive: own threads {median['pair_dedicated']:.1f} "
        f"({result['dedicated_over_single']:.2f}x), one shared llama thread "
        f"{median['pair_shared']:.1f} ({result['shared_over_single']:.2f}x); trials={rates}"
    )


if __name__ == "__main__":
    main()
