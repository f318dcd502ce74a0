"""Second-hop retrieval benchmark: how multi_hop_rag's hop writes its search query,
on the real embedded engines (SmolLM2-135M on llama.cpp, MiniLM, FAISS).

For every question of ``samples/multihop_questions.jsonl`` (docs ``samples/multihop``)
and every hop of ``VARIANTS`` (its query, and whether it keeps only unseen hits):

- retrieval, the judge forced: the first retrieval's evidence (judge "yes" at once),
  and the evidence after one hop (judge "no", then "yes"); each holds the fact iff a
  passage of the record's ``source`` file holds ``answer_contains`` as a word;
- the app as it runs, with the real calibrated judge: its decision per round, the
  rounds, whether the final evidence holds the fact and whether the answer contains
  ``answer_contains`` (case-insensitive).

Questions run one at a time in a seeded order, each query's cached prompts dropped
after it. Prints one result line; writes docs/bench/hops.json.

    python bench/bench_hops.py --seed 0
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
# name -> the hop's settings (multi_hop_rag.build): its query, and whether it keeps only
# hits the evidence does not hold yet
VARIANTS: dict[str, dict[str, Any]] = {
    "model": {"hop_query": "model", "is_skipping_seen": False},
    "model, unseen": {"hop_query": "model", "is_skipping_seen": True},
    "question+passage, unseen": {"hop_query": "question+passage", "is_skipping_seen": True},
}


def variant_app(variant: str) -> App:
    build_variant = functools.partial(build, **VARIANTS[variant])
    return dataclasses.replace(BASE, name=f"multi_hop_rag[{variant}]", build=build_variant)


def holds_fact(hits: list[Hit], record: dict[str, Any]) -> bool:
    words = re.compile(rf"\b{re.escape(record['answer_contains'])}\b", re.IGNORECASE)
    return any(
        Path(h.chunk.source).name == record["source"] and words.search(h.chunk.text) for h in hits
    )


async def ask(session: Session, app: App, question: str, max_tokens: int) -> Answer:
    changes = {"max_tokens": max_tokens}
    answer = await session.ask(app, question, app.sample_documents(), config_changes=changes)
    session.forget_prefixes(answer.query_id)
    return answer


async def first_retrievals(records: list[dict[str, Any]]) -> dict[str, bool]:
    stack = EngineStack.for_apps([BASE], fixed_judge_factory("yes", embedded_factory()))
    async with stack, Session(stack) as session:
        return {
            r["question"]: holds_fact((await ask(session, BASE, r["question"], 1)).passages, r)
            for r in records
        }


async def forced_hops(records: list[dict[str, Any]], apps: list[App]) -> dict[str, Any]:
    """Per variant and question: whether the evidence after one (forced) hop holds it."""
    stack = EngineStack.for_apps(apps, scripted_judge_factory(ONE_HOP, embedded_factory()))
    found: dict[str, dict[str, bool]] = {}
    async with stack, Session(stack) as session:
        for app in apps:
            found[app.name] = {}
            for r in records:
                answer = await ask(session, app, r["question"], 1)
                found[app.name][r["question"]] = holds_fact(answer.passages, r)
            num_found = sum(found[app.name].values())
            print(f"  {app.name} forced hop: {num_found}/{len(records)} hold the fact", flush=True)
    return found


async def real_runs(records: list[dict[str, Any]], apps: list[App]) -> dict[str, Any]:
    stack = EngineStack.for_apps(apps, embedded_factory())
    found: dict[str, list[dict[str, Any]]] = {}
    async with stack, Session(stack) as session:
        await ask(session, apps[0], records[-1]["question"], MAX_ANSWER_TOKENS)  # warm-up
        for app in apps:
            found[app.name] = []
            for r in records:
                answer = await ask(session, app, r["question"], MAX_ANSWER_TOKENS)
                row = {
                    "question": r["question"],
                    "decisions": list(answer.decisions.values()),
                    "num_rounds": len(answer.rounds),
                    "final_holds_fact": holds_fact(answer.passages, r),
                    "answer": answer.text,
                    "answer_right": r["answer_contains"].lower() in answer.text.lower(),
                    "latency_s": round(answer.latency_s, 4),
                }
                found[app.name].append(row)
                print(f"  {app.name} {r['question'][:40]}: {row['decisions']} "
                      f"right {row['answer_right']}", flush=True)  # fmt: skip
    return found


def summarize(
    records: list[dict[str, Any]], first: dict[str, bool], forced: dict[str, bool],
    real: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    missed = [r["question"] for r in records if not first[r["question"]]]
    two_rounds = [row for row in real if row["decisions"][:2] == ["no", "yes"]]
    return {
        "num_questions": len(records),
        "num_first_hop_holds_fact": len(records) - len(missed),
        "num_missed_first_found_by_hop": sum(forced[q] for q in missed),
        "num_after_hop_holds_fact": sum(forced.values()),
        "num_answer_right": sum(row["answer_right"] for row in real),
        "num_final_holds_fact": sum(row["final_holds_fact"] for row in real),
        "num_two_rounds_no_yes": len(two_rounds),
        "num_two_rounds_no_yes_right": sum(row["answer_right"] for row in two_rounds),
        "mean_rounds": round(sum(row["num_rounds"] for row in real) / len(real), 3),
        "mean_latency_s": round(sum(row["latency_s"] for row in real) / len(real), 4),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    records = list(sample_questions("multihop_questions.jsonl"))
    random.Random(args.seed).shuffle(records)
    apps = [variant_app(v) for v in args.variants]
    first = await first_retrievals(records)
    forced = await forced_hops(records, apps)
    real = await real_runs(records, apps)
    return {
        app.name: {
            "summary": summarize(records, first, forced[app.name], real[app.name]),
            "first_holds_fact": first,
            "after_hop_holds_fact": forced[app.name],
            "runs": real[app.name],
        }
        for app in apps
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    config = {k: v for k, v in vars(args).items() if k != "output"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"config": config, "results": results}, indent=1) + "\n")
    parts = []
    for name, found in results.items():
        s = found["summary"]
        n = s["num_questions"]
        parts.append(
            f"{name}: hop finds missed fact {s['num_missed_first_found_by_hop']}/"
            f"{n - s['num_first_hop_holds_fact']}, answers right {s['num_answer_right']}/{n}, "
            f"no->yes {s['num_two_rounds_no_yes']} ({s['num_two_rounds_no_yes_right']} right)"
        )
    print("bench_hops: " + "; ".join(parts))


if __name__ == "__main__":
    main()
