"""Aggregate decode throughput of the LLM engine under 1, 4, 8 and 16 concurrent
requests, against llama-cpp-python's high-level ``Llama`` serving the same requests one
after another (what a plain integration does).

Both sides use the same GGUF (SmolLM2-135M-Instruct by default), the same thread count,
greedy decoding, the same chat prompts and ``max_tokens``. Throughput = generated tokens
/ wall time from submitting the first request to the last one finishing (prefill
included). The prefix cache stays on (the system prompt is shared), as in serving.
Prints one result line; saves docs/bench/llm_batching<options><--suffix>.json.

    .venv/bin/python bench/bench_llm_batching.py [--threads 2] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from primflow.engines.base import EngineRequest
from primflow.engines.llm import LlamaEngine
from primflow.engines.llm.model import default_model_path
from primflow.engines.llm.quantize import requantized
from primflow.graph.ir import Op

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "bench"
SYSTEM = "You are a helpful assistant."
TOPICS = [
    "volcanoes", "the moon", "bread", "rivers", "chess", "bees", "glass", "trains",
    "owls", "paper", "tides", "salt", "clocks", "maps", "wool", "copper",
]  # fmt: skip
CONCURRENCY = (1, 4, 8, 16)


def requantize_q4_0(src: str) -> str:
    """The engine's cached Q4_0 conversion (quantize.py), made in a child process so this
    process's only llama caller stays the engine's llama thread (a second OS thread calling
    llama.cpp slows every call of the process)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(requantized, src, "q4_0").result()


def questions(num: int, offset: int) -> list[str]:
    return [f"Write two sentences about {TOPICS[(offset + i) % len(TOPICS)]}." for i in range(num)]


async def run_engine(engine: LlamaEngine, prompts: list[str], max_tokens: int, tag: str) -> int:
    """All prompts at once through the engine; returns generated tokens."""

    async def call(i: int, prompt: str) -> None:
        query = f"{tag}-{i}"
        prefill = EngineRequest(
            query,
            "prefill",
            Op.LLM_PREFILL,
            {"q": prompt},
            {"template": "{q}", "system": SYSTEM},
            llm_request_id=query,
        )
        decode = EngineRequest(query, "decode", Op.LLM_DECODE, {}, {"max_tokens": max_tokens},
                               llm_request_id=query)  # fmt: skip
        for request in (prefill, decode):
            [future] = engine.submit([request])
            await future
        engine.release(query)

    start = engine.stats()["num_decoded_tokens"]
    await asyncio.gather(*(call(i, p) for i, p in enumerate(prompts)))
    await asyncio.sleep(0.05)  # the last step's counters are published just after it
    # Each finished sequence's last sampled token is never fed back: +1 per request.
    return engine.stats()["num_decoded_tokens"] - start + len(prompts)


# The baseline runs in its own process: two OpenMP llama.cpp callers in one process slow
# each other down (OpenMP builds), which would flatter the engine.
_baseline_llm: Any = None


def _load_baseline(model_path: str, num_threads: int) -> None:
    global _baseline_llm
    from llama_cpp import Llama

    _baseline_llm = Llama(model_path=model_path, n_ctx=2048, n_threads=num_threads, verbose=False)


def run_baseline(prompts: list[str], max_tokens: int) -> tuple[int, float]:
    """The prompts one after another through ``Llama``: (generated tokens, seconds)."""
    t0 = time.perf_counter()
    total = 0
    for prompt in prompts:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        out = _baseline_llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0)
        total += int(out["usage"]["completion_tokens"])
    return total, time.perf_counter() - t0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--model", default=None, help="GGUF path (default SmolLM2-135M)")
    parser.add_argument("--flash-attn", action="store_true", help="engine flash attention on")
    parser.add_argument(
        "--requantize-q4-0",
        action="store_true",
        help="convert the model to Q4_0 first (the engine's cached conversion; llama.cpp has "
        "repacked Q4_0 GEMM kernels that make multi-token steps much cheaper); both sides "
        "use the converted file",
    )
    parser.add_argument("--suffix", default="", help="appended to the output file's stem")
    args = parser.parse_args()
    model_path = args.model or default_model_path()
    label = ""
    if args.requantize_q4_0:
        model_path = requantize_q4_0(model_path)
        label += "_q4_0"
    if args.flash_attn:
        label += "_fa"

    engine = LlamaEngine(
        "llm", model_path, n_ctx=4096, n_threads=args.threads, flash_attn=args.flash_attn
    )
    await engine.start()
    loop = asyncio.get_running_loop()
    baseline = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_load_baseline,
        initargs=(model_path, args.threads),
    )
    await loop.run_in_executor(baseline, run_baseline, questions(1, 0), 4)  # load + warm-up
    await run_engine(engine, questions(1, 0), 4, "warm")

    rows = []
    for num in CONCURRENCY:
        prompts = questions(num, offset=num)
        t0 = time.perf_counter()
        engine_tokens = await run_engine(engine, prompts, args.max_tokens, f"c{num}")
        engine_s = time.perf_counter() - t0
        base_tokens, base_s = await loop.run_in_executor(
            baseline, run_baseline, prompts, args.max_tokens
        )
        rows.append({
            "num_concurrent": num,
            "engine_tokens": engine_tokens, "engine_s": round(engine_s, 3),
            "engine_tok_per_s": round(engine_tokens / engine_s, 1),
            "baseline_tokens": base_tokens, "baseline_s": round(base_s, 3),
            "baseline_tok_per_s": round(base_tokens / base_s, 1),
            "speedup": round((engine_tokens / engine_s) / (base_tokens / base_s), 2),
        })  # fmt: skip
    baseline.shutdown()
    await engine.close()

    result = {
        "benchmark": "llm_batching",
        "model": os.path.basename(model_path),
        "threads": args.threads,
        "max_tokens": args.max_tokens,
        "engine_flash_attn": args.flash_attn,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "rows": rows,
    }
    out_path = OUT_DIR / f"llm_batching{label}{args.suffix}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    summary = ", ".join(f"{r['num_concurrent']}: {r['speedup']}x" for r in rows)
    at8 = next(r for r in rows if r["num_concurrent"] == 8)
    print(
        f"llm_batching{label}: engine vs sequential Llama aggregate decode tok/s speedup {summary} "
        f"(at 8: {at8['engine_tok_per_s']} vs {at8['baseline_tok_per_s']} tok/s; target >= 2x)"
    )


if __name__ == "__main__":
    asyncio.run(main())
