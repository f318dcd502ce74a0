"""Two-hop benchmark: how multi_hop_rag's hop writes its search query, what its answer
and its hop check read (all the evidence or the chain) and how its documents are
chunked, on the real embedded engines (SmolLM2-135M on llama.cpp, MiniLM, FAISS).

For every question of ``samples/multihop_questions.jsonl`` (docs ``samples/multihop``)
and every variant of ``VARIANTS`` (``multi_hop_rag.build`` settings and a chunk size):

- the judge forced: the first retrieval's evidence (judge "yes" at once), and after one
  hop (judge "no", then "yes") the evidence, the passages the answer read and the
  answer; passages hold the fact iff one of the record's ``source`` file holds
  ``answer_contains`` as a word, an answer is right iff it contains ``answer_contains``
  (case-insensitive);
- the app as it runs, with the real calibrated judge: its decision per round, the
  rounds, whether the final evidence and the answer's passages hold the fact and
  whether the answer is right (only for the variants of ``--real``).

Questions run one at a time in a seeded order, each query's cached prompts dropped
after it. Prints one result line; writes docs/bench/hops.json. The run on the results
page (docs/results/dynamic.md):

    python bench/bench_hops.py --seed 0 \
        --variants "model" "question+passage, unseen" "chain answer" "chunks 120" \
            "chunks 120, chain answer" "chunks 120, chain answer and check" \
        --real "question+passage, unseen" "chunks 120, chain answer" \
            "chunks 120, chain answer and check"

and the run that chose the first hop always (``min_hops=2``; with it the forced judge's
round-1 "no" is never asked, the first hop runs anyway):

    python bench/bench_hops.py --seed 0 \
        --variants "chunks 120, chain answer and check" \
            "chunks 120, chain, first hop always" \
            "chunks 120, chain, first hop always, check newest" \
        --output docs/bench/hops_first_hop.json

What the first retrieval holds is measured with ``min_hops=1`` in every variant.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import random
import re
from pathlib import Path
from typing import Any

from primflow.apps import APPS
from primflow.apps.app import App
from primflow.apps.multi_hop_rag import build
from primflow.apps.samples import sample_questions
from primflow.session import EngineStack, Session, embedded_factory
from primflow.session.answer import Answer
from primflow.testing.judge import fixed_judge_factory, scripted_judge_factory
from primflow.values import Hit

OUTPUT = Path("docs/bench/hops.json")
BASE = APPS["multi_hop_rag"]
ONE_HOP = {"hops.r1.enough.decode": "no", "hops.r2.enough.decode": "yes"}
MAX_ANSWER_TOKENS = 32


def variant(chunk_size: int = 300, **changes: Any) -> dict[str, Any]:
    """A variant's settings, every one explicit (the app's defaults may change)."""
    settings: dict[str, Any] = {
        "hop_query": "question+passage",
        "is_skipping_seen": True,
        "answer_reads": "evidence",
        "check_reads": "evidence",
        "answer_prompt": "brief",
        "num_chain_start": 2,
        "min_hops": 1,
    }
    return settings | changes | {"config": {"chunk_size": chunk_size}}


# name -> the app's settings (multi_hop_rag.build): the hop's query, whether it keeps only
# hits the evidence does not hold yet, what the answer step and the hop check read (all
# the evidence, or the chain: the first retrieval's best passages, then each hop's best
# new hit), the answer's prompt, the passages that start the chain; and the chunk size.
VARIANTS: dict[str, dict[str, Any]] = {
    "model": variant(hop_query="model", is_skipping_seen=False),
    "model, unseen": variant(hop_query="model"),
    "question+passage, unseen": variant(),
    "passages first": variant(answer_prompt="passages-first"),
    "chain answer": variant(answer_reads="chain"),
    "chain(1) answer": variant(answer_reads="chain", num_chain_start=1),
    "chain answer, passages first": variant(answer_reads="chain", answer_prompt="passages-first"),
    "chunks 150": variant(150),
    "chunks 150, chain answer": variant(150, answer_reads="chain"),
    "chunks 120": variant(120),
    "chunks 120, chain answer": variant(120, answer_reads="chain"),
    "chunks 120, chain answer and check": variant(120, answer_reads="chain", check_reads="chain"),
    "chunks 120, chain, first hop always": variant(
        120, answer_reads="chain", check_reads="chain", min_hops=2
    ),
    "chunks 120, chain, first hop always, check newest": variant(
        120, answer_reads="chain", check_reads="newest", min_hops=2
    ),
}


def variant_app(variant: str, **changes: Any) -> App:
    """``variant``'s app, its settings changed by ``changes``."""
    settings = {k: v for k, v in VARIANTS[variant].items() if k != "config"} | changes
    config = BASE.default_config.with_changes(**VARIANTS[variant].get("config", {}))
    build_variant = functools.partial(build, **settings)
    name = f"multi_hop_rag[{variant}]"
    return dataclasses.replace(BASE, name=name, build=build_variant, default_config=config)


def holds_fact(hits: list[Hit], record: dict[str, Any]) -> bool:
    words = re.compile(rf"\b{re.escape(record['answer_contains'])}\b", re.IGNORECASE)
    return any(
        Path(h.chunk.source).name == record["source"] and words.search(h.chunk.text) for h in hits
    )


def all_evidence(answer: Answer) -> list[Hit]:
    """Every passage the query held (``passages`` are the ones the answer read)."""
    return list(answer.outputs.get("evidence", answer.passages))


def answer_row(answer: Answer, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "question": record["question"],
        "decisions": list(answer.decisions.values()),
        "decision_scores": list(answer.decision_scores.values()),
        "num_rounds": len(answer.rounds),
        "final_holds_fact": holds_fact(all_evidence(answer), record),
        "num_answer_passages": len(answer.passages),
        "answer_passages_hold_fact": holds_fact(answer.passages, record),
        "answer_passages": [
            f"{Path(h.chunk.source).name}#{h.chunk.chunk_id}" for h in answer.passages
        ],
        "answer": answer.text,
        "answer_right": record["answer_contains"].lower() in answer.text.lower(),
        "latency_s": round(answer.latency_s, 4),
    }


async def ask(session: Session, app: App, question: str, max_tokens: int) -> Answer:
    changes = {"max_tokens": max_tokens}
    answer = await session.ask(app, question, app.sample_documents(), config_changes=changes)
    session.forget_prefixes(answer.query_id)
    return answer


async def first_retrievals(
    records: list[dict[str, Any]], apps: list[App]
) -> dict[str, dict[str, bool]]:
    """Per variant (its chunking) and question: whether the first retrieval holds it."""
    stack = EngineStack.for_apps(apps, fixed_judge_factory("yes", embedded_factory()))
    found: dict[str, dict[str, bool]] = {}
    async with stack, Session(stack) as session:
        for app in apps:
            found[app.name] = {}
            for r in records:
                answer = await ask(session, app, r["question"], 1)
                found[app.name][r["question"]] = holds_fact(all_evidence(answer), r)
    return found


async def forced_hops(records: list[dict[str, Any]], apps: list[App]) -> dict[str, Any]:
    """Per variant and question, after one (forced) hop: whether the evidence holds the
    fact, and the answer from it."""
    stack = EngineStack.for_apps(apps, scripted_judge_factory(ONE_HOP, embedded_factory()))
    found: dict[str, list[dict[str, Any]]] = {}
    async with stack, Session(stack) as session:
        for app in apps:
            found[app.name] = []
            for r in records:
                answer = await ask(session, app, r["question"], MAX_ANSWER_TOKENS)
                found[app.name].append(answer_row(answer, r))
            rows = found[app.name]
            print(f"  {app.name} forced hop: {sum(w['final_holds_fact'] for w in rows)}/"
                  f"{len(rows)} hold the fact, {sum(w['answer_right'] for w in rows)} right",
                  flush=True)  # fmt: skip
    return found


async def real_runs(records: list[dict[str, Any]], apps: list[App]) -> dict[str, Any]:
    found: dict[str, list[dict[str, Any]]] = {}
    if not apps:
        return found
    stack = EngineStack.for_apps(apps, embedded_factory())
    async with stack, Session(stack) as session:
        await ask(session, apps[0], records[-1]["question"], MAX_ANSWER_TOKENS)  # warm-up
        for app in apps:
            found[app.name] = []
            for r in records:
                answer = await ask(session, app, r["question"], MAX_ANSWER_TOKENS)
                row = answer_row(answer, r)
                found[app.name].append(row)
                print(f"  {app.name} {r['question'][:40]}: {row['decisions']} "
                      f"right {row['answer_right']}", flush=True)  # fmt: skip
    return found


def summarize(
    records: list[dict[str, Any]], first: dict[str, bool], forced_rows: list[dict[str, Any]],
    real: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    forced = {row["question"]: row["final_holds_fact"] for row in forced_rows}
    missed = [r["question"] for r in records if not first[r["question"]]]
    two_rounds = [row for row in real if row["decisions"][:2] == ["no", "yes"]]
    return {
        "num_questions": len(records),
        "num_first_hop_holds_fact": len(records) - len(missed),
        "num_missed_first_found_by_hop": sum(forced[q] for q in missed),
        "num_after_hop_holds_fact": sum(forced.values()),
        "num_after_hop_answer_passages_hold_fact": sum(
            row["answer_passages_hold_fact"] for row in forced_rows
        ),
        "num_after_hop_answer_right": sum(row["answer_right"] for row in forced_rows),
        "num_answer_right": sum(row["answer_right"] for row in real),
        "num_answer_passages_hold_fact": sum(row["answer_passages_hold_fact"] for row in real),
        "num_final_holds_fact": sum(row["final_holds_fact"] for row in real),
        "num_two_rounds_no_yes": len(two_rounds),
        "num_two_rounds_no_yes_right": sum(row["answer_right"] for row in two_rounds),
        "mean_rounds": round(sum(row["num_rounds"] for row in real) / max(len(real), 1), 3),
        "mean_latency_s": round(sum(row["latency_s"] for row in real) / max(len(real), 1), 4),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    records = list(sample_questions("multihop_questions.jsonl"))
    random.Random(args.seed).shuffle(records)
    apps = [variant_app(v) for v in args.variants]
    # What the first retrieval holds: the judge's "yes" must come before any hop.
    first = await first_retrievals(records, [variant_app(v, min_hops=1) for v in args.variants])
    forced = await forced_hops(records, apps)
    real_apps = [variant_app(v) for v in args.variants if v in args.real]
    real = {a.name: [] for a in apps} | await real_runs(records, real_apps)
    return {
        app.name: {
            "summary": summarize(records, first[app.name], forced[app.name], real[app.name]),
            "first_holds_fact": first[app.name],
            "after_hop": forced[app.name],
            "runs": real[app.name],
        }
        for app in apps
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--real",
        nargs="*",
        default=None,
        choices=list(VARIANTS),
        help="the variants also run with the real judge (default: all of --variants)",
    )
    args = parser.parse_args()
    args.real = args.variants if args.real is None else args.real
    results = asyncio.run(run(args))
    config = {k: v for k, v in vars(args).items() if k != "output"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"config": config, "results": results}, indent=1) + "\n")
    print("bench_hops: " + "; ".join(result_part(n, f) for n, f in results.items()))


def result_part(name: str, found: dict[str, Any]) -> str:
    s = found["summary"]
    n = s["num_questions"]
    part = (
        f"{name}: hop finds missed fact {s['num_missed_first_found_by_hop']}/"
        f"{n - s['num_first_hop_holds_fact']}, "
        f"right after one hop {s['num_after_hop_answer_right']}/{n}"
    )
    if not found["runs"]:
        return part
    return (
        f"{part}, answers right {s['num_answer_right']}/{n}, mean rounds {s['mean_rounds']}, "
        f"no->yes {s['num_two_rounds_no_yes']} ({s['num_two_rounds_no_yes_right']} right)"
    )


if __name__ == "__main__":
    main()
