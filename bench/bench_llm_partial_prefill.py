"""Prefill time removed from the critical path by partial prefill (paper §5.3).

A RAG-shaped prompt: instruction + question (known at once) then retrieved context
(known only after retrieval, simulated as a wait of ``--retrieval-ms``). Two ways:

- one-shot: wait for the context, then LLM_PREFILL the whole prompt, then decode;
- split: LLM_PARTIAL_PREFILL the known half at t=0 (it overlaps retrieval), then
  LLM_FULL_PREFILL the context when it arrives, then decode.

The critical path measured is from the context's arrival to the end of prefill (and
to the end of a short decode). Prefix caching is off so each run computes its prompt.
The retrieval wait is a sleep: on a real 2-core box retrieval also needs CPU, so the
overlap gain there is smaller (retrieval and the LLM then compete for the cores).
Prints one result line; saves
docs/bench/llm_partial_prefill.json.

    .venv/bin/python bench/bench_llm_partial_prefill.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from primflow.engines.base import EngineRequest
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "llm_partial_prefill.json"
SYSTEM = "You are a helpful assistant. Answer from the context only."
INSTRUCTION = (
    "You answer questions about a technical report. Read the question first, then the "
    "context passages, and answer in one sentence. If the context does not contain the "
    "answer, say so. Cite the passage number you used. "
)
SENTENCE = (
    "Passage {i}: The {name} subsystem processed {n} requests per second during the "
    "evaluation and its median latency stayed below {m} milliseconds under load. "
)
NAMES = ["ingest", "router", "cache", "planner", "indexer", "merger", "ranker", "writer"]


def prompt_parts(rep: int, num_passages: int) -> tuple[str, str]:
    question = f"Question {rep}: which subsystem had the lowest median latency?\n"
    known = INSTRUCTION * 3 + question
    context = "".join(
        SENTENCE.format(i=i, name=NAMES[(i + rep) % len(NAMES)], n=100 + 37 * i, m=5 + (i * 7) % 23)
        for i in range(num_passages)
    )
    return known, f"Context:\n{context}\nAnswer:"


def req(query: str, node: str, op: Op, inputs: dict[str, Any], **params: Any) -> EngineRequest:
    return EngineRequest(query, node, op, inputs, params, llm_request_id=query)


async def call(engine: LlamaEngine, request: EngineRequest) -> dict[str, Any]:
    [future] = engine.submit([request])
    return await future


async def one_shot(engine: LlamaEngine, rep: int, args: argparse.Namespace) -> dict[str, float]:
    known, context = prompt_parts(rep, args.num_passages)
    query = f"one-{rep}"
    await asyncio.sleep(args.retrieval_ms / 1000)  # the context arrives
    t0 = time.perf_counter()
    state = await call(
        engine,
        req(query, "prefill", Op.LLM_PREFILL, {"k": known, "c": context}, template="{k}{c}",
            system=SYSTEM),
    )  # fmt: skip
    t_prefill = time.perf_counter() - t0
    await call(engine, req(query, "decode", Op.LLM_DECODE, {}, max_tokens=args.max_tokens))
    engine.release(query)
    return {"prefill_s": t_prefill, "answer_s": time.perf_counter() - t0,
            "num_tokens": state["state"].num_tokens}  # fmt: skip


async def split(engine: LlamaEngine, rep: int, args: argparse.Namespace) -> dict[str, float]:
    known, context = prompt_parts(rep, args.num_passages)
    query = f"split-{rep}"
    t_start = time.perf_counter()
    partial = asyncio.ensure_future(
        call(engine, req(query, "partial", Op.LLM_PARTIAL_PREFILL, {"k": known}, template="{k}",
                         system=SYSTEM))
    )  # fmt: skip
    done_at: list[float] = []
    partial.add_done_callback(lambda _: done_at.append(time.perf_counter()))
    await asyncio.sleep(args.retrieval_ms / 1000)
    t0 = time.perf_counter()
    state = await partial  # normally done long ago, during retrieval
    partial_done_s = done_at[0] - t_start
    state = await call(
        engine,
        req(query, "full", Op.LLM_FULL_PREFILL, {"c": context, "state": state["state"]},
            template="{c}"),
    )  # fmt: skip
    t_prefill = time.perf_counter() - t0
    await call(engine, req(query, "decode", Op.LLM_DECODE, {}, max_tokens=args.max_tokens))
    engine.release(query)
    return {
        "prefill_s": t_prefill,
        "answer_s": time.perf_counter() - t0,
        "partial_prefill_s": partial_done_s,  # from t=0, overlapped with retrieval
        "num_tokens": state["state"].num_tokens,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-passages", type=int, default=8)
    parser.add_argument("--retrieval-ms", type=float, default=1500.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    # Prefix caching off (min_reuse_tokens huge): every run computes its whole prompt.
    engine = LlamaEngine("llm", n_ctx=4096, n_threads=args.threads, min_reuse_tokens=10**9)
    await engine.start()
    runs: dict[str, list[dict[str, float]]] = {"one_shot": [], "split": []}
    for rep in range(args.repeats):  # interleaved, so drift hits both alike
        runs["one_shot"].append(await one_shot(engine, rep, args))
        runs["split"].append(await split(engine, rep, args))
    await engine.close()

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    one_prefill, split_prefill = median("one_shot", "prefill_s"), median("split", "prefill_s")
    one_answer, split_answer = median("one_shot", "answer_s"), median("split", "answer_s")
    result = {
        "benchmark": "llm_partial_prefill",
        "threads": args.threads,
        "retrieval_ms": args.retrieval_ms,
        "num_prompt_tokens": runs["one_shot"][0]["num_tokens"],
        "median_one_shot_prefill_s": round(one_prefill, 4),
        "median_split_full_prefill_s": round(split_prefill, 4),
        "median_partial_prefill_s": round(median("split", "partial_prefill_s"), 4),
        "prefill_critical_path_reduction": round(1 - split_prefill / one_prefill, 3),
        "median_one_shot_answer_s": round(one_answer, 4),
        "median_split_answer_s": round(split_answer, 4),
        "answer_critical_path_reduction": round(1 - split_answer / one_answer, 3),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "runs": runs,
    }
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"llm_partial_prefill: prefill after context arrival {one_prefill * 1000:.0f} ms one-shot "
        f"vs {split_prefill * 1000:.0f} ms split "
        f"({result['prefill_critical_path_reduction']:.0%} off the critical path; answer "
        f"{result['answer_critical_path_reduction']:.0%}) for a "
        f"{result['num_prompt_tokens']}-token prompt"
    )


if __name__ == "__main__":
    asyncio.run(main())
