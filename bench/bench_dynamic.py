"""Dynamic apps benchmark: primflow against the sequential and parallel baselines on the
same embedded engines (SmolLM2-135M on llama.cpp, MiniLM, FAISS, BM25 web search).

Apps: multi_hop_rag and tool_agent (a ``Loop`` growing the graph round by round),
corrective_rag and search_augmented (a ``Condition`` dropping the untaken branch). Every
decision is the real judge's constrained choice. Per app, on one engine stack:

- single queries: each question of the app's sample set runs once per scheme, the scheme
  going first rotating, each query's cached prompts dropped after it;
- modest load: the same Poisson arrivals (``--rate-qps``, seeded) for every scheme.

Per query it records latency, the rounds appended and the time spent lowering and
optimizing each one (incrementally, on the new round only) as a share of the query, and
the work the query did not run: engine primitives of the graph never dispatched (an
untaken branch) with the decode tokens they were allowed, and, for a loop, the
primitives a static graph unrolled to ``max_rounds`` would have held.

    python bench/bench_dynamic.py --seed 0

Prints one result line; writes docs/bench/dynamic.json (repository-relative).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.apps.app import App
from primflow.apps.samples import sample_questions
from primflow.engines.base import Engine, EngineKind
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import INLINE_OPS, Graph, Op
from primflow.session import EngineStack, Session, embedded_factory
from primflow.session.factories import fake_factory
from primflow.session.session import Answer
from primflow.session.stack import EngineFactory
from primflow.testing.recording import RecordingEngine

DEFAULT_APPS = ("multi_hop_rag", "corrective_rag", "tool_agent", "search_augmented")
SCHEMES = ("primflow", "sequential", "parallel")
OUTPUT = Path("docs/bench/dynamic.json")
TARGET_REOPTIMIZE_SHARE = 0.01  # re-optimization per query, at most 1 % of its latency
# search_augmented is asked questions that need a search and ones that do not.
QUESTION_SETS = {"search_augmented": "search_questions.jsonl"}


def recording(factory: EngineFactory) -> EngineFactory:
    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine:
        return RecordingEngine(factory(name, kind, budget, profile))

    return build


def decisions_right(
    app: str, label: dict[str, Any], answer: Answer, judge: RecordingEngine
) -> list[bool]:
    """Whether each of the query's decisions matches its sample label: search iff the
    question needs one; grade "yes" iff the documents hold the answer; the agent's first
    tool is the first one the record lists; a hop check "yes" iff the passages it read
    hold the answer."""
    decisions = list(answer.decisions.items())
    if app == "search_augmented":
        return [(d == "yes") == label["needs_search"] for _, d in decisions]
    if app == "corrective_rag":
        return [(d == "yes") == (label["expects"] == "documents") for _, d in decisions]
    if app == "tool_agent":
        return [decisions[0][1] == label["tools"][0]] if decisions else []
    right = []
    for node, choice in decisions:
        prompt = judge.prompt(f"{answer.query_id}/{node.removesuffix('.decode')}")
        right.append((choice == "yes") == (label["answer_contains"].lower() in prompt.lower()))
    return right


def engine_nodes(graph: Graph) -> list[str]:
    return [n.name for n in graph if n.op not in INLINE_OPS]


def skipped_work(answer: Answer) -> dict[str, int]:
    """Engine primitives of the query's graph that never ran, and their decode budget."""
    ran = {p.node for p in answer.timing.primitives}
    skipped = [n for n in engine_nodes(answer.graph) if n not in ran]
    tokens = sum(
        int(answer.graph.node(n).params.get("max_tokens", 0))
        for n in skipped
        if answer.graph.node(n).op is Op.LLM_DECODE
    )
    return {"num_primitives_skipped": len(skipped), "num_decode_tokens_skipped": tokens}


def unrolled_size(app: App, question: str, changes: dict[str, Any]) -> int | None:
    """Primitives of the p-graph grown to ``max_rounds`` steps (the largest step each
    round): what a static graph of the loop would hold; None for an app without a loop."""
    template = app.template()
    sizes = []
    for step in _loop_steps(app):
        lowered = lower_query(template, app.query(question, app.sample_documents(), **changes))
        growth = lowered.growth
        if growth is None:
            return None
        growth.attach(lowered.graph)
        graph = growth.unroll([step] * growth.loop.max_rounds)
        sizes.append(len(engine_nodes(graph)))
    return max(sizes) if sizes else None


def _loop_steps(app: App) -> list[str]:
    lowered = lower_query(app.template(), app.sample_query())
    return [] if lowered.growth is None else list(lowered.growth.loop.steps)


def record(answer: Answer, right: list[bool]) -> dict[str, Any]:
    reoptimize_s = sum(r.lower_s + r.optimize_s for r in answer.rounds)
    per_round = [
        {**r.to_dict(), "share_of_query": (r.lower_s + r.optimize_s) / answer.latency_s}
        for r in answer.rounds
    ]
    return {
        "question": answer.question,
        "latency_s": round(answer.latency_s, 6),
        "num_rounds": len(answer.rounds),
        "decisions": dict(answer.decisions),
        "first_optimize_s": round(answer.optimize_s, 6),
        "reoptimize_s": round(reoptimize_s, 6),
        "reoptimize_share": reoptimize_s / answer.latency_s,
        "rounds": per_round,
        "decisions_right": right,
        "num_primitives_run": len(answer.timing.primitives),
        **skipped_work(answer),
    }


class AppBench:
    def __init__(self, session: Session, app: App, changes: dict[str, Any]) -> None:
        self.session, self.app, self.changes = session, app, changes
        self.documents = app.sample_documents()

    async def ask(self, question: str, scheme: str) -> Answer:
        answer = await self.session.ask(
            self.app, question, self.documents, scheme=scheme, config_changes=self.changes
        )
        self.session.forget_prefixes(answer.query_id)
        return answer

    async def single(self, labels: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        questions = [label["question"] for label in labels]
        judge = self.session.stack.engines["judge"]
        assert isinstance(judge, RecordingEngine)
        for scheme in SCHEMES:  # warm-up: model pages, shared instruction prefixes
            await self.ask(questions[-1], scheme)
        found: dict[str, list[dict[str, Any]]] = {s: [] for s in SCHEMES}
        for i, question in enumerate(questions):
            for scheme in [*SCHEMES[i % 3 :], *SCHEMES[: i % 3]]:
                answer = await self.ask(question, scheme)
                right = decisions_right(self.app.name, labels[i], answer, judge)
                found[scheme].append(record(answer, right))
                print(f"  {self.app.name} {scheme:<10} q{i}: {answer.latency_s:.2f}s "
                      f"rounds {len(answer.rounds)} {list(answer.decisions.values())}",
                      flush=True)  # fmt: skip
        return found

    async def load(self, questions: list[str], arrivals_s: list[float]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for scheme in SCHEMES:
            started_s = time.perf_counter()

            async def one(
                at_s: float, question: str, t0: float = started_s, scheme: str = scheme
            ) -> float:
                await asyncio.sleep(max(0.0, at_s - (time.perf_counter() - t0)))
                return (await self.ask(question, scheme)).latency_s

            latencies = await asyncio.gather(
                *(one(at, questions[i % len(questions)]) for i, at in enumerate(arrivals_s))
            )
            found[scheme] = {"mean_s": statistics.fmean(latencies),
                             "p95_s": float(np.percentile(latencies, 95)),
                             "span_s": time.perf_counter() - started_s}  # fmt: skip
            print(f"  load {self.app.name} {scheme:<10}: mean {found[scheme]['mean_s']:.2f}s "
                  f"p95 {found[scheme]['p95_s']:.2f}s", flush=True)  # fmt: skip
        return found


def summarize(single: dict[str, list[dict[str, Any]]], load: dict[str, Any]) -> dict[str, Any]:
    means = {s: statistics.fmean(q["latency_s"] for q in rows) for s, rows in single.items()}
    ours = single["primflow"]
    shares = [r["share_of_query"] for q in ours for r in q["rounds"]]
    return {
        "single_mean_s": means,
        "speedup_vs_sequential": means["sequential"] / means["primflow"],
        "speedup_vs_parallel": means["parallel"] / means["primflow"],
        "load_mean_s": {s: v["mean_s"] for s, v in load.items()},
        "load_speedup_vs_sequential": load["sequential"]["mean_s"] / load["primflow"]["mean_s"],
        "load_speedup_vs_parallel": load["parallel"]["mean_s"] / load["primflow"]["mean_s"],
        "mean_rounds": statistics.fmean(q["num_rounds"] for q in ours),
        "decision_accuracy": _accuracy([r for q in ours for r in q["decisions_right"]]),
        "max_reoptimize_share_per_round": max(shares) if shares else 0.0,
        "mean_reoptimize_share_per_query": statistics.fmean(q["reoptimize_share"] for q in ours),
        "num_rounds_cached": sum(r["optimize_cache_hit"] for q in ours for r in q["rounds"]),
        "num_rounds": len(shares),
        "mean_primitives_run": statistics.fmean(q["num_primitives_run"] for q in ours),
        "mean_primitives_skipped": statistics.fmean(q["num_primitives_skipped"] for q in ours),
        "mean_decode_tokens_skipped": statistics.fmean(
            q["num_decode_tokens_skipped"] for q in ours
        ),
    }


def _accuracy(right: list[bool]) -> float | None:
    return sum(right) / len(right) if right else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    changes = {"max_tokens": args.max_tokens, "ignore_eos": True}
    rng = random.Random(args.seed)
    apps = [APPS[name] for name in args.apps.split(",")]
    results: dict[str, Any] = {}
    factory = fake_factory(latency_scale=0.01) if args.fake_engines else embedded_factory()
    stack = EngineStack.for_apps(apps, recording(factory))
    async with stack, Session(stack) as session:
        for app in apps:
            records = sample_questions(QUESTION_SETS.get(app.name, app.questions_file))
            labels = rng.sample(records, min(args.num_questions, len(records)))
            questions = [label["question"] for label in labels]
            bench = AppBench(session, app, changes)
            single = await bench.single(labels)
            gaps = np.random.default_rng(args.seed).exponential(1 / args.rate_qps,
                                                                args.num_load_queries)  # fmt: skip
            arrivals = [float(t) for t in np.cumsum(gaps) - gaps[0]]
            load = await bench.load(questions, arrivals)
            summary = summarize(single, load)
            summary["unrolled_primitives"] = unrolled_size(app, questions[0], changes)
            results[app.name] = {"summary": summary, "single": single, "load": load}
    return results


def _fmt_share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", default=",".join(DEFAULT_APPS))
    parser.add_argument("--num-questions", type=int, default=4)
    parser.add_argument("--num-load-queries", type=int, default=6)
    parser.add_argument("--rate-qps", type=float, default=0.5)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--fake-engines", action="store_true", help="smoke run on fakes")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    config = {k: v for k, v in vars(args).items() if k != "output"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"config": config, "apps": results}, indent=1) + "\n")
    parts = []
    for name, found in results.items():
        s = found["summary"]
        parts.append(
            f"{name}: {s['speedup_vs_sequential']:.2f}x vs seq, {s['speedup_vs_parallel']:.2f}x "
            f"vs par (load {s['load_speedup_vs_sequential']:.2f}x/"
            f"{s['load_speedup_vs_parallel']:.2f}x), rounds {s['mean_rounds']:.1f}, "
            f"reopt <= {s['max_reoptimize_share_per_round']:.2%}/round, "
            f"decisions right {_fmt_share(s['decision_accuracy'])}, "
            f"skipped {s['mean_primitives_skipped']:.1f} prims"
        )
    print("bench_dynamic: " + "; ".join(parts))


if __name__ == "__main__":
    main()
