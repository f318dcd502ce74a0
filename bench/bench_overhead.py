"""Scheduling overhead of the runtime per primitive, with zero-latency fake engines.

Runs the advanced-RAG e-graph (the largest app graph) on fakes whose latency is zero,
on a real event loop, and measures wall time: once for queries run one at a time, once
for 1,000 queries submitted at once. Everything the runtime does per primitive (graph
scheduler events, engine scheduler, batching policy, worker, futures) is in the
number, plus the fakes' own trivial work, so it is an upper bound on scheduling
overhead. The topology runs are repeated with the runtime's plan cache off, in the
same process, to show what caching per-graph plans saves. Prints one result line;
saves docs/bench/overhead.json.

    .venv/bin/python bench/bench_overhead.py [--seed 0] [--num-sequential 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from primflow.runtime.runtime import Runtime
from primflow.sim.engines import build_engines
from primflow.sim.profiles import preset
from primflow.sim.workload import SimQuery, Workload, app_workload
from primflow.testing.fake_engine import FakeEngine

APP = "advanced_rag"
TARGET_US_PER_PRIMITIVE = 100.0
OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "overhead.json"


def _make_runtime(policy: str, workload: Workload, max_num_cached_plans: int) -> Runtime:
    profiles = workload.profiles(preset("gpu"))
    engines = build_engines(workload.kinds, profiles, llm_contention=0.0)
    for instances in engines.values():
        for engine in instances:
            assert isinstance(engine, FakeEngine)
            engine.latency_scale = 0.0
    # No batching wait: with zero-latency engines any wait would be idle time, not overhead.
    return Runtime(
        engines,
        policy=policy,
        max_wait_ms=0.0,
        profiles=profiles,
        max_num_cached_plans=max_num_cached_plans,
    )


async def _measure(
    policy: str, seed: int, num_sequential: int, num_concurrent: int, is_plan_cached: bool = True
) -> dict[str, Any]:
    workload = app_workload(APP, "primflow", preset("gpu"), queries="generated")
    runtime = _make_runtime(policy, workload, max_num_cached_plans=256 if is_plan_cached else 0)
    rng = np.random.default_rng(seed)
    num_queries = max(num_sequential, num_concurrent)
    queries: list[SimQuery] = [workload.make_query(i, rng) for i in range(num_queries)]
    async with runtime:
        for query in queries[:20]:  # warm-up: caches, code paths
            await runtime.run(query.graph, query.inputs)
        gc.collect()
        started_s = time.perf_counter()
        for query in queries[:num_sequential]:
            await runtime.run(query.graph, query.inputs)
        sequential_s = time.perf_counter() - started_s

        batch = queries[:num_concurrent]
        gc.collect()
        started_s = time.perf_counter()
        results = await runtime.run_many((q.graph, q.inputs) for q in batch)
        concurrent_s = time.perf_counter() - started_s
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeError(f"{len(failures)} queries failed, first: {failures[0]!r}")
    return {
        "policy": policy,
        "is_plan_cached": is_plan_cached,
        "num_plans_built": runtime.num_plans_built,
        "num_distinct_graph_objects": len({id(q.graph) for q in queries}),
        "one_at_a_time": _rates(queries[:num_sequential], sequential_s),
        "concurrent": _rates(batch, concurrent_s),
    }


def _rates(queries: list[SimQuery], wall_s: float) -> dict[str, float]:
    # Primitives = every node run (inline INPUT/OUTPUT/AGGREGATE too); engine
    # primitives = the ones that went through an engine scheduler.
    num_primitives = sum(len(q.graph) for q in queries)
    num_engine = sum(1 for q in queries for n in q.graph if n.engine is not None)
    return {
        "num_queries": len(queries),
        "num_primitives": num_primitives,
        "num_engine_primitives": num_engine,
        "wall_s": wall_s,
        "us_per_primitive": wall_s / num_primitives * 1e6,
        "us_per_engine_primitive": wall_s / num_engine * 1e6,
        "primitives_per_s": num_primitives / wall_s,
        "queries_per_s": len(queries) / wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-sequential", type=int, default=200)
    parser.add_argument("--num-concurrent", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args()
    variants = [("fifo", True), ("topology", True), ("critical_path", True), ("topology", False)]
    runs = [
        asyncio.run(_measure(policy, args.seed, args.num_sequential, args.num_concurrent, cached))
        for policy, cached in variants
    ]
    uncached = runs.pop()
    worst = max(
        max(r["one_at_a_time"]["us_per_primitive"], r["concurrent"]["us_per_primitive"])
        for r in runs
    )
    report = {
        "app": APP,
        "seed": args.seed,
        "target_us_per_primitive": TARGET_US_PER_PRIMITIVE,
        "worst_us_per_primitive": worst,
        "meets_target": worst < TARGET_US_PER_PRIMITIVE,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "runs": runs,
        "topology_without_plan_cache": uncached,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    parts = [
        f"{r['policy']} {r['one_at_a_time']['us_per_primitive']:.1f}/"
        f"{r['concurrent']['us_per_primitive']:.1f}"
        for r in runs
    ]
    topo = next(r for r in runs if r["policy"] == "topology")
    savings = [
        1 - topo[mode]["wall_s"] / uncached[mode]["wall_s"]
        for mode in ("one_at_a_time", "concurrent")
    ]
    print(
        f"overhead us/primitive (1 query / {args.num_concurrent} concurrent): {', '.join(parts)}; "
        f"topology {topo['one_at_a_time']['primitives_per_s']:.0f} / "
        f"{topo['concurrent']['primitives_per_s']:.0f} primitives/s; "
        f"plan cache saves {savings[0]:.0%} / {savings[1]:.0%}; "
        f"target < {TARGET_US_PER_PRIMITIVE:.0f} us: "
        f"{'met' if report['meets_target'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
