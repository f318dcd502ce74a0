"""Judge accuracy benchmark: the grammar-constrained choice against the calibrated one
(contextual calibration, engines/llm/choice_scoring.py) on the real SmolLM2-135M judge.

Two judges, each with a few prompt wordings (the apps' own first):

- multi-hop check (multi_hop_rag): for every question of
  ``samples/multihop_questions.jsonl``, the app's first retrieval (the real embedder and
  FAISS index, top 2 over ``samples/multihop``) and the same passages plus the passage
  that holds the answer. Right: "yes" iff the passages hold the answer.
- search judge (search_augmented): the 20 questions of ``samples/search_questions.jsonl``.
  Right: "yes" iff the question needs a search (its label).

Each case runs through the real judge engine (a ``Judge`` alone in a graph) once with
the grammar and once calibrated; the calibrated run also records each answer's plain
log-probability, so "log-probability, uncalibrated" is its argmax. Cases run one at a
time in a seeded order. Prints one result line; writes docs/bench/judge.json.

    python bench/bench_judge.py --seed 0
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primflow.api.components import Judge
from primflow.api.config import Query
from primflow.api.lower import lower
from primflow.api.template import Template, build_template
from primflow.apps import APPS
from primflow.apps.multi_hop_rag import ENOUGH_PROMPT, HOP_BIAS
from primflow.apps.samples import sample_questions
from primflow.apps.search_augmented import SEARCH_BIAS
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import PortType
from primflow.runtime.runtime import Runtime
from primflow.session import EngineStack, Session, embedded_factory
from primflow.testing.judge import fixed_judge_factory
from primflow.values import Chunk, Hit

OUTPUT = Path("docs/bench/judge.json")
HOP_WORDINGS = {
    "app": ENOUGH_PROMPT,  # "can it be answered, or is a fact missing?"
    "every-fact": (  # the app's wording before calibration
        "Question: {question}\nPassages:\n{evidence}\n\n"
        "Do the passages contain every fact needed to answer the question? Reply yes or no.\n"
        "Reply:"
    ),
    "stated": (
        "Question: {question}\nPassages:\n{evidence}\n\n"
        "Is the answer to the question stated in the passages? Reply yes or no.\nReply:"
    ),
}
SEARCH_WORDINGS = {
    "app": None,  # the query's prompts.judge, as search_augmented asks it
    "lookup": (
        "Does this question ask for a specific fact (a name, date, number or place) that "
        "has to be looked up? Reply yes or no.\nQuestion: {question}\nReply:"
    ),
    "knowledge": (
        "Question: {question}\n"
        "Can you answer this from general knowledge or by thinking alone, without "
        "looking anything up? Reply no if it can, yes if it needs a search.\nReply:"
    ),
}
MODES = ("grammar", "calibrated")
# How far a yes-no margin moves between runs of one prompt (whole, or from a cached
# prefix; measured on SmolLM2 Q4_1): decisions closer than this to the threshold may flip.
NOISE_NATS = 0.15
APP_BIASES = {"hop/app": HOP_BIAS, "search/app": SEARCH_BIAS}
# (label, judge, the wording the app used before calibration)
BEFORE = (("hop check", "hop", "every-fact"), ("search", "search", "app"))


@dataclass(frozen=True)
class Case:
    judge: str  # "hop" or "search"
    question: str
    expected: str  # "yes" or "no"
    evidence: list[Hit] | None = None  # the hop check's passages
    kind: str = ""  # hop cases: "first retrieval" or "with the fact"


def hop_judge(prompt: str, calibrate: bool) -> Template:
    judge = Judge(
        "enough",
        prompt=prompt,
        reads={"question": "question", "evidence": "evidence"},
        decision="decision",
        calibrate=calibrate,
    )
    return build_template(
        "hop_check", judge, outputs={"decision": "decision"}, inputs={"evidence": PortType.HITS}
    )


def search_judge(prompt: str | None, calibrate: bool) -> Template:
    if prompt is None:
        judge = Judge(question="question", decision="decision", calibrate=calibrate)
    else:
        judge = Judge(
            prompt=prompt, reads={"question": "question"}, decision="decision", calibrate=calibrate
        )
    return build_template("search_judge", judge, outputs={"decision": "decision"})


def fact_passage(source: str, answer: str) -> Hit:
    """The first paragraph of ``samples/multihop/<source>`` that holds ``answer`` as
    words (the second hop's fact in every record of the set)."""
    app = APPS["multi_hop_rag"]
    [document] = [d for d in app.sample_documents() if Path(d.source).name == source]
    words = re.compile(rf"\b{re.escape(answer)}\b", re.IGNORECASE)
    paragraph = next(p for p in document.text.split("\n\n") if words.search(p))
    return Hit(Chunk(paragraph.strip(), source, -1), 0.0)


async def hop_cases() -> list[Case]:
    """Per multi-hop question: the app's first retrieval, and it plus the answer's passage."""
    app = APPS["multi_hop_rag"]
    stack = EngineStack.for_apps([app], fixed_judge_factory("yes", embedded_factory()))
    cases = []
    async with stack, Session(stack) as session:
        for record in sample_questions("multihop_questions.jsonl"):
            answer = await session.ask(
                app, record["question"], app.sample_documents(), config_changes={"max_tokens": 1}
            )
            first = list(answer.passages)
            holds = any(record["answer_contains"].lower() in h.chunk.text.lower() for h in first)
            cases.append(
                Case("hop", record["question"], "yes" if holds else "no", first, "first retrieval")
            )
            if not holds:
                fact = fact_passage(record["source"], record["answer_contains"])
                cases.append(
                    Case("hop", record["question"], "yes", [*first, fact], "with the fact")
                )
    return cases


def search_cases() -> list[Case]:
    return [
        Case("search", r["question"], "yes" if r["needs_search"] else "no")
        for r in sample_questions("search_questions.jsonl")
    ]


async def judge_all(
    runtime: Runtime, cases: list[Case], template: Template
) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        inputs = {"evidence": case.evidence} if case.evidence is not None else {}
        graph = lower(template, Query(case.question, inputs=inputs))
        started_s = time.perf_counter()
        result = await runtime.run(graph, {"question": case.question, **inputs})
        latency_s = time.perf_counter() - started_s
        [(node, decision)] = result.decisions.items()
        scores = result.decision_scores.get(node)
        row: dict[str, Any] = {
            "question": case.question,
            "kind": case.kind,
            "expected": case.expected,
            "decision": decision,
            "right": decision == case.expected,
            "latency_s": round(latency_s, 4),
        }
        if scores is not None:
            by_logprob = max(scores, key=lambda a: scores[a]["logprob"])
            row |= {"scores": scores, "logprob_decision": by_logprob}
            row["logprob_right"] = by_logprob == case.expected
            first, second = list(scores)[:2]  # yes, no
            row["margin"] = scores[first]["calibrated"] - scores[second]["calibrated"]
        rows.append(row)
    return rows


def threshold_fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The bias on "yes" that maximizes the right decisions (in-sample, the midpoint of
    the best gap between sorted margins), and the same fit left-one-out: each case
    judged with the bias fitted on the others."""

    def fit(margins: list[tuple[float, bool]]) -> float:
        cuts = sorted(m for m, _ in margins)
        candidates = [cuts[0] - 1.0] + [(a + b) / 2 for a, b in itertools.pairwise(cuts)]
        candidates.append(cuts[-1] + 1.0)
        return max(candidates, key=lambda t: sum((m > t) == is_yes for m, is_yes in margins))

    margins = [(r["margin"], r["expected"] == "yes") for r in rows]
    threshold = fit(margins)
    num_loo_right = sum(
        (m > fit(margins[:i] + margins[i + 1 :])) == is_yes for i, (m, is_yes) in enumerate(margins)
    )
    return {
        "fitted_yes_bias": round(-threshold, 3),
        "num_right_fitted": sum((m > threshold) == is_yes for m, is_yes in margins),
        "num_right_leave_one_out": num_loo_right,
    }


def summarize(rows: list[dict[str, Any]], key: str = "right") -> dict[str, Any]:
    decisions = "decision" if key == "right" else "logprob_decision"
    return {
        "num_right": sum(r[key] for r in rows),
        "num_cases": len(rows),
        "num_yes": sum(r[decisions] == "yes" for r in rows),
        "num_right_when_yes": sum(r[key] for r in rows if r["expected"] == "yes"),
        "num_expected_yes": sum(r["expected"] == "yes" for r in rows),
        "num_right_when_no": sum(r[key] for r in rows if r["expected"] == "no"),
        "num_expected_no": sum(r["expected"] == "no" for r in rows),
        "mean_latency_s": round(sum(r["latency_s"] for r in rows) / len(rows), 4),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    cases = {"hop": await hop_cases(), "search": search_cases()}
    for found in cases.values():
        rng.shuffle(found)
    wordings: dict[str, dict[str, Any]] = {"hop": HOP_WORDINGS, "search": SEARCH_WORDINGS}
    builders: dict[str, Callable[[Any, bool], Template]] = {
        "hop": hop_judge,
        "search": search_judge,
    }
    results: dict[str, Any] = {}
    engine = LlamaEngine("judge", n_ctx=4096, n_seq_max=4)
    async with Runtime({"judge": engine}) as runtime:
        for judge, by_name in wordings.items():
            for wording, prompt in by_name.items():
                for mode in MODES:
                    template = builders[judge](prompt, mode == "calibrated")
                    rows = await judge_all(runtime, cases[judge], template)
                    results |= measured(f"{judge}/{wording}", mode, rows)
    return results


def measured(name: str, mode: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary = summarize(rows)
    found = {f"{name}/{mode}": {"summary": summary, "cases": rows}}
    if mode == "calibrated":
        summary |= threshold_fit(rows)
        if name in APP_BIASES:  # the app's judge adds its bias to the calibrated scores
            app_bias = APP_BIASES[name]
            bias = app_bias.get("yes", 0.0) - app_bias.get("no", 0.0)
            summary["app_bias"] = dict(app_bias)
            summary["num_right_app_bias"] = sum(
                (r["margin"] + bias > 0) == (r["expected"] == "yes") for r in rows
            )
            summary["num_within_noise"] = sum(abs(r["margin"] + bias) < NOISE_NATS for r in rows)
        found[f"{name}/logprob"] = {"summary": summarize(rows, "logprob_right")}
    print(f"  {name} {mode}: right {summary['num_right']}/{summary['num_cases']}, "
          f"yes {summary['num_yes']}", flush=True)  # fmt: skip
    return found


def _right(results: dict[str, Any], key: str) -> str:
    s = results[key]["summary"]
    return f"{s['num_right']}/{s['num_cases']}"


def _after(summary: dict[str, Any]) -> str:
    return (
        f"{summary['num_right_app_bias']}/{summary['num_cases']} (fit here: left-one-out "
        f"{summary['num_right_leave_one_out']}/{summary['num_cases']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    config = {k: v for k, v in vars(args).items() if k != "output"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"config": config, "results": results}, indent=1) + "\n")
    parts = [
        f"{label}: before (grammar, {before} prompt) {_right(results, f'{judge}/{before}/grammar')}"
        f", calibrated {_right(results, f'{judge}/app/calibrated')}, calibrated + app bias "
        f"{_after(results[f'{judge}/app/calibrated']['summary'])}"
        for label, judge, before in BEFORE
    ]
    print("bench_judge: " + "; ".join(parts))


if __name__ == "__main__":
    main()
