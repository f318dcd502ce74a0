"""LLM step scheduling under load: the batching policies and cross-query batching modes
side by side on one engine stack.

For each app (naive_rag and advanced_rag by default; balanced workload, shared
placement, fixed-length answers as in `primflow bench`) it runs Poisson arrivals at
``--rate`` (default 0.25 q/s: the rate `primflow bench` picks for these apps, the first
where sequential's p95 exceeds 3x its single query) for every pair of

- batching policy: fifo, topology, critical_path (a Session per policy, as the
  ``policy_*`` ablations; the LLM's step planner follows the policy of the engine
  scheduler that queued each request), and
- cross-query batching: ``cost`` (the profile's step-cost rule) and ``off`` (one query's
  real work per step, the earlier default), switched on the same LLM engine.

Every pair runs the same seeded arrivals and questions on the same engines; the pair
going first rotates with the seed and the repetition. Per run it records mean / p95
latency and the LLM's steps and tokens per step. Prints one result line; saves
docs/bench/<name>.json.

    PYTHONPATH=. python bench/bench_llm_scheduling.py [--llm-fast] [--repeats 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from primflow.api.documents import Document, load_documents
from primflow.apps.samples import samples_dir
from primflow.bench.benchmark import BenchConfig, questions_for
from primflow.engines.llm import LlamaEngine
from primflow.session.factories import EmbeddedSettings, embedded_factory
from primflow.session.session import Session
from primflow.session.stack import EngineStack, engines_for_apps
from primflow.sim.stats import LatencyStats

OUT_DIR = Path(__file__).resolve().parents[1] / "docs" / "bench"
POLICY_ABLATIONS = {"fifo": "policy_fifo", "topology": "policy_topology", "critical_path": "full"}
BATCHING_MODES = ("cost", "off")
STEP_STATS = ("num_steps", "num_decoded_tokens", "num_prefilled_tokens")


def llm_engines(stack: EngineStack) -> list[LlamaEngine]:
    return [e for e in stack.engines.values() if isinstance(e, LlamaEngine)]


def step_counts(stack: EngineStack) -> dict[str, int]:
    totals = dict.fromkeys(STEP_STATS, 0)
    for engine in llm_engines(stack):
        stats = engine.stats()
        for name in STEP_STATS:
            totals[name] += stats[name]
    return totals


async def open_loop(
    session: Session,
    app: str,
    questions: list[str],
    arrivals_s: list[float],
    documents: list[Document],
    changes: dict[str, Any],
) -> LatencyStats:
    """Question i at ``arrivals_s[i]``, whatever is still running (as `primflow bench`)."""
    started_s = time.perf_counter()
    latencies: list[float] = []
    failures: list[BaseException] = []

    async def one(at_s: float, question: str) -> None:
        await asyncio.sleep(max(0.0, at_s - (time.perf_counter() - started_s)))
        try:
            answer = await session.ask(app, question, documents, config_changes=changes)
            session.forget_prefixes(answer.query_id)
            latencies.append(answer.latency_s)
        except Exception as exc:  # counted, never averaged in
            failures.append(exc)

    await asyncio.gather(*(one(t, questions[i]) for i, t in enumerate(arrivals_s)))
    span_s = time.perf_counter() - started_s
    return LatencyStats.from_latencies(latencies, num_failed=len(failures), span_s=span_s)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = BenchConfig(apps=args.apps, num_questions=1)
    changes = config.query_changes("balanced")
    documents = load_documents(samples_dir() / "docs")
    factory = embedded_factory(EmbeddedSettings(is_llm_fast=args.llm_fast))
    stack = EngineStack(engines_for_apps(args.apps), factory, placement="shared")
    pairs = [(p, m) for p in args.policies for m in args.modes]
    runs: list[dict[str, Any]] = []
    async with stack, contextlib.AsyncExitStack() as opened:
        sessions = {
            policy: await opened.enter_async_context(
                Session(stack, ablation=POLICY_ABLATIONS[policy])
            )
            for policy in args.policies
        }
        for app in args.apps:
            questions = questions_for(args.num_queries, app)
            for session in sessions.values():  # warm-up: pages, instruction prefixes
                answer = await session.ask(app, questions[-1], documents, config_changes=changes)
                session.forget_prefixes(answer.query_id)
            for repeat in range(args.repeats):
                rng = np.random.default_rng(args.seed + repeat)
                gaps = rng.exponential(1.0 / args.rate, size=args.num_queries)
                arrivals = [float(t) for t in np.cumsum(gaps) - gaps[0]]
                shift = (args.seed + repeat) % len(pairs)  # who goes first rotates
                for policy, mode in [*pairs[shift:], *pairs[:shift]]:
                    for engine in llm_engines(stack):
                        engine.set_cross_query_batching(mode)
                    before = step_counts(stack)
                    stats = await open_loop(
                        sessions[policy], app, questions, arrivals, documents, changes
                    )
                    await asyncio.sleep(0.05)  # the engines publish counters after a step
                    after = step_counts(stack)
                    steps = {k: after[k] - before[k] for k in STEP_STATS}
                    run_record = {
                        "app": app,
                        "repeat": repeat,
                        "policy": policy,
                        "cross_query_batching": mode,
                        **stats.to_dict(),
                        **steps,
                        "decode_tokens_per_step": steps["num_decoded_tokens"]
                        / max(steps["num_steps"], 1),
                    }
                    runs.append(run_record)
                    print(
                        f"{app} r{repeat} {policy:<13} {mode:<4}: {stats.summary()}, "
                        f"{steps['num_steps']} steps, "
                        f"{run_record['decode_tokens_per_step']:.2f} decode tokens/step",
                        flush=True,
                    )
    return {"runs": runs, "summary": summarize(runs)}


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per app and pair: mean over repeats of the mean / p95 latency, their spread, and
    the ratio off / cost (> 1: cost-based batching is faster) of the same policy."""
    rows: list[dict[str, Any]] = []
    keys = sorted({(r["app"], r["policy"], r["cross_query_batching"]) for r in runs})
    for app, policy, mode in keys:
        chosen = [
            r
            for r in runs
            if (r["app"], r["policy"], r["cross_query_batching"]) == (app, policy, mode)
        ]
        means = [r["mean_s"] for r in chosen]
        p95s = [r["p95_s"] for r in chosen]
        rows.append(
            {
                "app": app,
                "policy": policy,
                "cross_query_batching": mode,
                "mean_s": statistics.fmean(means),
                "mean_min_s": min(means),
                "mean_max_s": max(means),
                "p95_s": statistics.fmean(p95s),
                "decode_tokens_per_step": statistics.fmean(
                    r["decode_tokens_per_step"] for r in chosen
                ),
                "num_steps": statistics.fmean(r["num_steps"] for r in chosen),
            }
        )
    by_key = {(r["app"], r["policy"], r["cross_query_batching"]): r for r in rows}
    for row in rows:
        off = by_key.get((row["app"], row["policy"], "off"))
        if row["cross_query_batching"] == "cost" and off is not None:
            row["mean_speedup_vs_off"] = off["mean_s"] / row["mean_s"]
            row["p95_speedup_vs_off"] = off["p95_s"] / row["p95_s"]
    return rows


def result_line(summary: list[dict[str, Any]], is_llm_fast: bool) -> str:
    parts = [
        f"{r['app']}/{r['policy']}/{r['cross_query_batching']} mean {r['mean_s']:.2f}s"
        + (f" (x{r['mean_speedup_vs_off']:.2f} vs off)" if "mean_speedup_vs_off" in r else "")
        for r in summary
    ]
    return f"bench_llm_scheduling{' (llm-fast)' if is_llm_fast else ''}: " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--apps", type=lambda t: t.split(","), default=["naive_rag", "advanced_rag"]
    )
    parser.add_argument("--policies", type=lambda t: t.split(","), default=list(POLICY_ABLATIONS))
    parser.add_argument(
        "--modes", type=lambda t: t.split(","), default=list(BATCHING_MODES), help="cost,off,on"
    )
    parser.add_argument("--rate", type=float, default=0.25, help="Poisson rate, queries/s")
    parser.add_argument("--num-queries", type=int, default=6, help="queries per run")
    parser.add_argument("--repeats", type=int, default=1, help="runs per pair (spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm-fast", action="store_true", help="Q4_0 with flash attention")
    parser.add_argument("--name", default=None, help="output stem (default llm_scheduling[_fast])")
    args = parser.parse_args()
    data = asyncio.run(run(args))
    name = args.name or ("llm_scheduling_fast" if args.llm_fast else "llm_scheduling")
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "config": {k: v for k, v in vars(args).items()},
        "engine_kinds": {k: str(v) for k, v in engines_for_apps(args.apps).items()},
        **data,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(result_line(data["summary"], args.llm_fast))


if __name__ == "__main__":
    main()
