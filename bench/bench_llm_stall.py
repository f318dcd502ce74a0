"""The LLM one request at a time, with and without an outside load: where do stalls come from?

The parity bench's "one request at a time" row (bench_parity_engines.py: 4 seeded RAG
prompts, 32 answer tokens each, ``ignore_eos``) had one engine repeat per run take
2-4x the others. This bench runs the same prompts, one request at a time, on

- ``engine_fa_on``: the LLM engine of the parity bench's stack, its defaults (flash
  attention on; one-token steps, a lone sequence's decode, on one thread and the other
  steps on two: ``n_threads_one_token=1``); on the same core budget,
  ``engine_fa_on_2t``: every step on two threads (``n_threads_one_token=None``, the
  default before), and ``engine_fa_off_2t``: that with flash attention off;
- ``raw_fa_off``: ``Llama.create_chat_completion`` (``Llama``'s default: flash attention
  off), ``raw_fa_on``: the same with ``Llama(flash_attn=True)``, in a spawned process;

each under every outside load of ``--loads`` (bench_llm_stall_sides.py: ``none``;
``spin``: one process busy-looping, placed by the scheduler; ``pinned``: the same,
pinned to core 1; ``spin2``: two), started before and stopped after each block. Every
round runs each load once and, under it, each variant once, the order of both rotating
round by round. Per request: median, max and how many took > 2x the median of the same
variant and load; per step (the engine's ``llama_decode`` calls; the raw side's token
to token times): decode steps with <= 256 KV positions and with more (llama.cpp views
the KV cache in multiples of 256 cells, and a one-row flash-attention step over >= 512
cells splits the cells over the threads), and prefill, each step's median and the
count of steps > 4x the median of the same variant without load.

Prints one result line and saves docs/bench/llm_stall.json (or ``--out``).

    PYTHONPATH=.:bench python bench/bench_llm_stall.py [--rounds 2] [--loads none,spin,spin2]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import bench_llm_stall_sides as sides
from bench_parity_engines import MAX_TOKENS, engine_call, rag_prompts

from primflow.engines.llm import LlamaEngine
from primflow.engines.llm.model import default_model_path
from primflow.session.factories import embedded_factory
from primflow.session.stack import EngineStack, engines_for_apps

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "llm_stall.json"
# Engines beside the stack's (engine_fa_on), on its core budget: their config changes.
ENGINE_VARIANTS: dict[str, dict[str, Any]] = {
    "engine_fa_on_2t": {"n_threads_one_token": None},
    "engine_fa_off_2t": {"flash_attn": False, "n_threads_one_token": None},
}
VARIANTS = ("engine_fa_on", "engine_fa_on_2t", "engine_fa_off_2t", "raw_fa_off", "raw_fa_on")
NUM_THREADS = 2
KV_VIEW_CELLS = 256  # llama.cpp pads the KV view to a multiple of this (llama-kv-cache.cpp)
SLOW_REQUEST = 2.0  # a request this many times its variant's median under the same load
SLOW_STEP = 4.0  # a step this many times its kind's median of the variant without load

Request = tuple[float, list[sides.Step]]  # a request's seconds and its steps
Runs = dict[str, dict[str, list[Request]]]  # load -> variant -> requests


class Bench:
    """Both sides, ready to run one variant's prompts one at a time."""

    def __init__(self, stack: EngineStack, pool: ProcessPoolExecutor, prompts: list[str]) -> None:
        self.stack = stack
        self.pool = pool
        self.prompts = prompts
        self.recorder = sides.StepRecorder()
        self.engines: dict[str, LlamaEngine] = {}
        self._num_queries = 0

    async def start(self) -> None:
        llm = self.stack.engines["llm"]
        assert isinstance(llm, LlamaEngine)
        self.engines = {"engine_fa_on": llm}
        for variant, settings in ENGINE_VARIANTS.items():
            engine = LlamaEngine(
                variant, config=replace(llm.config, **settings), budget=self.stack.budget
            )
            await engine.start()
            self.engines[variant] = engine
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, sides.timed_raw, "raw_fa_off", ["Hi."], 4)
        for name in VARIANTS:  # one warm request each, not recorded
            await self.run(name, self.prompts[:1])

    async def close(self) -> None:
        for variant in ENGINE_VARIANTS:
            await self.engines[variant].close()

    async def run(self, variant: str, prompts: Sequence[str]) -> list[Request]:
        if variant.startswith("raw"):
            loop = asyncio.get_running_loop()
            found: list[Request] = await loop.run_in_executor(
                self.pool, sides.timed_raw, variant, list(prompts), MAX_TOKENS
            )
            return found
        engine = self.engines[variant]
        out = []
        for prompt in prompts:
            self._num_queries += 1
            self.recorder.label = variant
            started_s = time.perf_counter()
            await engine_call(engine, f"stall-{self._num_queries}", prompt, MAX_TOKENS)
            seconds = time.perf_counter() - started_s
            self.recorder.label = None
            out.append((seconds, self.recorder.steps.pop(variant, [])))
        return out


async def measure(args: argparse.Namespace, loads: list[str]) -> tuple[Runs, list[list[str]]]:
    prompts = rag_prompts(args.seed, args.num_prompts)
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=sides.load_raw,
        initargs=(default_model_path(), NUM_THREADS),
    )
    stack = EngineStack(engines_for_apps(["naive_rag"]), embedded_factory(), placement="shared")
    runs: Runs = {load: {v: [] for v in VARIANTS} for load in loads}
    orders: list[list[str]] = []
    async with stack:
        bench = Bench(stack, pool, prompts)
        restore = bench.recorder.install()
        await bench.start()
        for r in range(args.rounds):
            for load in rotated(loads, r):
                order = rotated(list(VARIANTS), r + loads.index(load))
                orders.append([load, *order])
                with sides.OutsideLoad(load):
                    for variant in order:
                        runs[load][variant].extend(await bench.run(variant, prompts))
                print(f"round {r} load {load} done", flush=True)
        await bench.close()
        restore()
    pool.shutdown()
    return runs, orders


def rotated(items: list[str], shift: int) -> list[str]:
    shift %= len(items)
    return items[shift:] + items[:shift]


def step_kind(step: sides.Step) -> str:
    if step.rows > 1:
        return "prefill"
    return "decode_kv_le_256" if step.kv_end <= KV_VIEW_CELLS else "decode_kv_gt_256"


def summarize(runs: Runs) -> dict[str, dict[str, Any]]:
    """Per load and variant: request times and step times (see the module doc)."""
    baseline = {v: step_medians(runs.get("none", {}).get(v, [])) for v in VARIANTS}
    out: dict[str, dict[str, Any]] = {}
    for load, by_variant in runs.items():
        out[load] = {}
        for variant, found in by_variant.items():
            seconds = [s for s, _ in found]
            median = statistics.median(seconds)
            steps: dict[str, Any] = {}
            for kind, times in steps_by_kind(found).items():
                base = baseline[variant].get(kind, statistics.median(times))
                steps[kind] = {
                    "num": len(times),
                    "median_ms": 1e3 * statistics.median(times),
                    "max_ms": 1e3 * max(times),
                    "total_s_per_request": sum(times) / len(found),
                    "num_slow": sum(1 for t in times if t > SLOW_STEP * base),
                }
            out[load][variant] = {
                "request_s": seconds,
                "median_s": median,
                "max_s": max(seconds),
                "num_slow": sum(1 for s in seconds if s > SLOW_REQUEST * median),
                "steps": steps,
            }
    return out


def steps_by_kind(found: list[Request]) -> dict[str, list[float]]:
    kinds: dict[str, list[float]] = {}
    for _, steps in found:
        for step in steps:
            kinds.setdefault(step_kind(step), []).append(step.seconds)
    return kinds


def step_medians(found: list[Request]) -> dict[str, float]:
    return {kind: statistics.median(t) for kind, t in steps_by_kind(found).items()}


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per load: raw_fa_off / each variant's median request (> 1: faster than
    ``create_chat_completion``'s default), and each variant's median over its own
    median without load (the slowdown the load causes)."""
    out: dict[str, dict[str, float]] = {}
    for load, rows in summary.items():
        reference = rows["raw_fa_off"]["median_s"]
        out[load] = {f"raw_fa_off/{v}": reference / rows[v]["median_s"] for v in VARIANTS}
        if "none" in summary:
            for v in VARIANTS:
                out[load][f"{v} load/none"] = rows[v]["median_s"] / summary["none"][v]["median_s"]
    return out


def one_line(summary: dict[str, dict[str, Any]]) -> str:
    parts = []
    for load, rows in summary.items():
        cells = [
            f"{v} {r['median_s']:.2f}s (max {r['max_s']:.2f}, {r['num_slow']} > 2x)"
            for v, r in rows.items()
        ]
        parts.append(f"{load}: " + ", ".join(cells))
    return "llm_stall (median request): " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loads", default="none,spin,spin2")
    parser.add_argument("--num-prompts", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args()
    loads = args.loads.split(",")
    unknown = sorted(set(loads) - set(sides.LOADS))
    if unknown:
        parser.error(f"unknown loads {unknown}; choose from {sorted(sides.LOADS)}")
    load_start = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    runs, orders = asyncio.run(measure(args, loads))
    summary = summarize(runs)
    result = {
        "benchmark": "llm_stall",
        "date": started,
        "seed": args.seed,
        "rounds": args.rounds,
        "num_prompts": args.num_prompts,
        "max_tokens": MAX_TOKENS,
        "num_threads": NUM_THREADS,
        "orders": orders,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": load_start,
            "load_avg_end": os.getloadavg(),
        },
        "results": summary,
        "ratios": ratios(summary),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(one_line(summary))


if __name__ == "__main__":
    main()
