"""Cross-query batching on a loaded LLM engine: the step-cost rule against one query
per step and plain continuous batching, side by side on the same engine.

Each request is one query's LLM call (a chat prompt, then ``--max-tokens`` answer tokens,
end-of-sequence ignored) with its query start set, as primflow's runtime sends them.
Requests arrive as a seeded Poisson process at ``--rate``; every cross-query batching
mode (``cost``, ``off``, ``on``; engines/llm/step_groups.py) serves the same arrivals on
the same engine, the mode going first rotating per repetition. Both LLM options run:
the shipped Q4_1 model and ``--llm-fast``'s Q4_0 with flash attention, each with its
shipped step-cost profile. Records mean / p95 latency (arrival to last token), steps
and decode tokens per step. Prints one result line; saves
docs/bench/llm_query_batching.json.

    PYTHONPATH=. python bench/bench_llm_query_batching.py [--rate 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from primflow.engines.base import EngineRequest
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op
from primflow.sim.stats import LatencyStats

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "bench"
MODES = ("cost", "off", "on")
OPTIONS: dict[str, dict[str, Any]] = {
    "q4_1": {},
    "q4_0_fa": {"quantization": "q4_0", "flash_attn": True},
}
TOPICS = [
    "volcanoes", "the moon", "bread", "rivers", "chess", "bees", "glass", "trains",
    "owls", "paper", "tides", "salt", "clocks", "maps", "wool", "copper",
]  # fmt: skip


def phase(query: str, op: Op, start_s: float, **params: Any) -> EngineRequest:
    inputs = params.pop("inputs", {})
    request = EngineRequest(query, op.value, op, inputs, params, llm_request_id=f"{query}/call")
    return replace(request, query_start_s=start_s, arrival_s=start_s, policy="critical_path")


async def one(engine: LlamaEngine, query: str, topic: str, max_tokens: int) -> float:
    start_s = time.monotonic()
    prompt = {"q": f"Write a few sentences about {topic}."}
    prefill = phase(query, Op.LLM_PREFILL, start_s, template="{q}", inputs=prompt)
    decode = phase(query, Op.LLM_DECODE, start_s, max_tokens=max_tokens, ignore_eos=True)
    futures = engine.submit([prefill, decode])  # pre-scheduled, as the runtime does
    await asyncio.gather(*futures)
    engine.abort(query)  # no cached prefix left for the next mode's same prompt
    return time.monotonic() - start_s


async def open_loop(
    engine: LlamaEngine, arrivals_s: list[float], max_tokens: int, tag: str
) -> LatencyStats:
    started_s = time.perf_counter()

    async def at(i: int, at_s: float) -> float:
        await asyncio.sleep(max(0.0, at_s - (time.perf_counter() - started_s)))
        return await one(engine, f"{tag}-{i}", TOPICS[i % len(TOPICS)], max_tokens)

    latencies = await asyncio.gather(*(at(i, t) for i, t in enumerate(arrivals_s)))
    return LatencyStats.from_latencies(list(latencies), span_s=time.perf_counter() - started_s)


async def run_option(option: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    engine = LlamaEngine("llm", n_ctx=4096, n_seq_max=32, **OPTIONS[option])
    await engine.start()
    await one(engine, "warm", "tea", 8)
    runs = []
    for repeat in range(args.repeats):
        rng = np.random.default_rng(args.seed + repeat)
        gaps = rng.exponential(1.0 / args.rate, size=args.num_requests)
        arrivals = [float(t) for t in np.cumsum(gaps) - gaps[0]]
        shift = repeat % len(MODES)
        for mode in [*MODES[shift:], *MODES[:shift]]:
            engine.set_cross_query_batching(mode)
            before = engine.stats()
            stats = await open_loop(engine, arrivals, args.max_tokens, f"{option}-{mode}-{repeat}")
            await asyncio.sleep(0.05)  # counters are published after the step
            after = engine.stats()
            num_steps = after["num_steps"] - before["num_steps"]
            num_decoded = after["num_decoded_tokens"] - before["num_decoded_tokens"]
            record = {
                "option": option,
                "repeat": repeat,
                "cross_query_batching": mode,
                **stats.to_dict(),
                "num_steps": num_steps,
                "decode_tokens_per_step": num_decoded / max(num_steps, 1),
            }
            runs.append(record)
            print(
                f"{option} r{repeat} {mode:<4}: {stats.summary()}, {num_steps} steps, "
                f"{record['decode_tokens_per_step']:.2f} decode tokens/step",
                flush=True,
            )
    await engine.close()
    return runs


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for option in OPTIONS:
        means = {
            m: [
                r["mean_s"] for r in runs if (r["option"], r["cross_query_batching"]) == (option, m)
            ]
            for m in MODES
        }
        for mode in MODES:
            chosen = [r for r in runs if (r["option"], r["cross_query_batching"]) == (option, mode)]
            if not chosen:
                continue
            rows.append(
                {
                    "option": option,
                    "cross_query_batching": mode,
                    "mean_s": [r["mean_s"] for r in chosen],
                    "p95_s": [r["p95_s"] for r in chosen],
                    "decode_tokens_per_step": statistics.fmean(
                        r["decode_tokens_per_step"] for r in chosen
                    ),
                    "mean_speedup_vs_off": [
                        off / this for off, this in zip(means["off"], means[mode], strict=False)
                    ],
                }
            )
    return rows


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for option in args.options:
        runs.extend(await run_option(option, args))
    return {"runs": runs, "summary": summarize(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", type=lambda t: t.split(","), default=list(OPTIONS))
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second")
    parser.add_argument("--num-requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="llm_query_batching")
    args = parser.parse_args()
    data = asyncio.run(main_async(args))
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "config": vars(args),
        **data,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    parts = [
        f"{r['option']}/{r['cross_query_batching']} mean "
        + "/".join(f"{m:.2f}" for m in r["mean_s"])
        + "s, x"
        + "/".join(f"{v:.2f}" for v in r["mean_speedup_vs_off"])
        + " vs off"
        for r in data["summary"]
    ]
    print("bench_llm_query_batching: " + "; ".join(parts))


if __name__ == "__main__":
    main()
