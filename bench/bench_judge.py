"""Judge accuracy benchmark: the grammar-constrained choice against the calibrated one
(contextual calibration, engines/llm/choice_scoring.py) on the real SmolLM2-135M judge.

Three judges, each with a few prompt wordings (the apps' own first):

- multi-hop check (multi_hop_rag): for every question of
  ``samples/multihop_questions.jsonl``, the app's first retrieval (the real embedder and
  FAISS index, top 2 over ``samples/multihop``) and the same passages plus the passage
  that holds the answer. Right: "yes" iff the passages hold the answer.
- search judge (search_augmented): the 20 questions of ``samples/search_questions.jsonl``.
  Right: "yes" iff the question needs a search (its label).
- corrective grade (corrective_rag): for every question of
  ``samples/corrective_questions.jsonl``, the app's first retrieval (top 3 over
  ``samples/docs``). Right: "yes" iff the record expects the documents to answer it
  (``expects``); whether those passages hold ``answer_contains`` is recorded per case.

The cases are built in bench/bench_judge_cases.py. The first retrievals run with the
judge forced to "yes" on its own decode node, so no second hop adds passages.

Each case runs through the real judge engine (a ``Judge`` alone in a graph) once with
the grammar and once calibrated; the calibrated run also records each answer's plain
log-probability, so "log-probability, uncalibrated" is its argmax. Cases run one at a
time in a seeded order. A calibrated run is also scored with a fitted bias
(left-one-out too), and each judge's whole choice of setting (wording x mode x bias) is
scored left-one-out (bench/bench_judge_fit.py). For reference, the grade is also decided
with no judge at all: a threshold on the top hit's similarity score, fitted the same way.
Prints one result line; writes docs/bench/judge.json.

    python bench/bench_judge.py --seed 0

``--judges grade`` measures one judge alone (for a quick look; the docs' table is the
run of all three).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_judge_cases import Case, grade_cases, hop_cases, search_cases
from bench_judge_fit import selection_fit, threshold_fit

from primflow.api.components import Judge
from primflow.api.config import Query
from primflow.api.lower import lower
from primflow.api.template import Template, build_template
from primflow.apps.corrective_rag import GRADE_PROMPT
from primflow.apps.multi_hop_rag import ENOUGH_PROMPT, HOP_BIAS
from primflow.apps.search_augmented import SEARCH_BIAS
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import PortType
from primflow.runtime.runtime import Runtime
from primflow.values import Hit

OUTPUT = Path("docs/bench/judge.json")
CONTAIN_PROMPT = (  # corrective_rag's grade before this bench measured it
    "Question: {question}\nPassages:\n{hits}\n\n"
    "Do the passages contain the answer to the question? Reply yes or no.\nReply:"
)
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
# (prompt, placeholders the content-free prior keeps); the grade reads {hits}, as the app.
GRADE_WORDINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "app": (GRADE_PROMPT, ()),  # "answered from these passages alone, or a fact missing?"
    "contain": (CONTAIN_PROMPT, ()),  # "do they contain the answer?": the app's before
    "contain-question-prior": (CONTAIN_PROMPT, ("question",)),  # prior: the question's own
    "alone-question-first": (
        "Question: {question}\nPassages:\n{hits}\n\n"
        "Can the question be answered from these passages alone, or is a fact missing? "
        "Reply yes if it can be answered, no if a fact is missing.\nReply:",
        (),
    ),
    "stated": (
        "Question: {question}\nPassages:\n{hits}\n\n"
        "Is the answer to the question stated in the passages? Reply yes or no.\nReply:",
        (),
    ),
}
MODES = ("grammar", "calibrated")
# How far a yes-no margin moves between runs of one prompt (whole, or from a cached
# prefix; measured on SmolLM2 Q4_1): decisions closer than this to the threshold may flip.
NOISE_NATS = 0.15
# How each app's judge decides now (its wording is "app"), and the bias it adds to the
# calibrated scores.
APP_MODES = {"hop": "calibrated", "search": "calibrated", "grade": "grammar"}
APP_BIASES = {"hop/app": HOP_BIAS, "search/app": SEARCH_BIAS}
# (label, judge, the wording the app used before calibration)
BEFORE = (
    ("hop check", "hop", "every-fact"),
    ("search", "search", "app"),
    ("corrective grade", "grade", "contain"),
)
JUDGES = ("hop", "search", "grade")


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


def grade_judge(wording: tuple[str, tuple[str, ...]], calibrate: bool) -> Template:
    prompt, keep_in_prior = wording
    judge = Judge(
        "grade",
        prompt=prompt,
        reads={"hits": "evidence", "question": "question"},  # renders as the app's {hits}
        decision="decision",
        calibrate=calibrate,
        keep_in_prior=keep_in_prior if calibrate else (),
    )
    return build_template(
        "grade", judge, outputs={"decision": "decision"}, inputs={"evidence": PortType.HITS}
    )


def passage_key(hit: Hit) -> str:
    return f"{Path(hit.chunk.source).name}#{hit.chunk.chunk_id}"


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
        if case.evidence is not None:
            row["passages"] = [passage_key(h) for h in case.evidence]
            row["passage_scores"] = [round(h.score, 4) for h in case.evidence]
        if case.holds_answer is not None:
            row["passages_hold_answer"] = case.holds_answer
        if scores is not None:
            by_logprob = max(scores, key=lambda a: scores[a]["logprob"])
            row |= {"scores": scores, "logprob_decision": by_logprob}
            row["logprob_right"] = by_logprob == case.expected
            first, second = list(scores)[:2]  # yes, no
            row["margin"] = scores[first]["calibrated"] - scores[second]["calibrated"]
        rows.append(row)
    return rows


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


async def judge_cases(judges: list[str], rng: random.Random) -> dict[str, list[Case]]:
    """Each judge's cases (real first retrievals for hop and grade), in a seeded order."""
    builders = {"hop": hop_cases, "grade": grade_cases}
    cases = {j: await builders[j]() if j in builders else search_cases() for j in judges}
    for found in cases.values():
        rng.shuffle(found)
    return cases


def retrieval_summary(cases: list[Case]) -> dict[str, Any]:
    """The grade cases' first retrievals: how many hold ``answer_contains``, by kind."""
    return {
        kind: {
            "num_cases": sum(c.kind == kind for c in cases),
            "num_passages_hold_answer": sum(c.kind == kind and bool(c.holds_answer) for c in cases),
        }
        for kind in ("documents", "web")
    }


def top_score_fit(cases: list[Case]) -> dict[str, Any]:
    """No judge, for reference: grade "yes" iff the best passage's similarity to the
    question passes a threshold fitted on the cases (in-sample and left-one-out)."""
    rows = [{"margin": c.evidence[0].score, "expected": c.expected} for c in cases if c.evidence]
    return threshold_fit(rows) | {"num_cases": len(rows)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    judges = args.judges.split(",")
    cases = await judge_cases(judges, random.Random(args.seed))
    wordings: dict[str, dict[str, Any]] = {
        "hop": HOP_WORDINGS,
        "search": SEARCH_WORDINGS,
        "grade": GRADE_WORDINGS,
    }
    builders: dict[str, Callable[[Any, bool], Template]] = {
        "hop": hop_judge,
        "search": search_judge,
        "grade": grade_judge,
    }
    results: dict[str, Any] = {}
    if "grade" in cases:
        results["grade/first_retrieval"] = retrieval_summary(cases["grade"])
        results["grade/top_score"] = top_score_fit(cases["grade"])
    engine = LlamaEngine("judge", n_ctx=4096, n_seq_max=4)
    async with Runtime({"judge": engine}) as runtime:
        for judge in judges:
            for wording, prompt in wordings[judge].items():
                for mode in MODES:
                    template = builders[judge](prompt, mode == "calibrated")
                    rows = await judge_all(runtime, cases[judge], template)
                    results |= measured(f"{judge}/{wording}", mode, rows)
            results[f"{judge}/selection"] = selection_fit(results, judge)
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


def _now(results: dict[str, Any], judge: str) -> str:
    """The app's judge as it decides now: calibrated + its bias, or the grammar."""
    if APP_MODES[judge] == "grammar":
        return f"now (grammar, app prompt) {_right(results, f'{judge}/app/grammar')}"
    calibrated = results[f"{judge}/app/calibrated"]["summary"]
    return (
        f"calibrated {_right(results, f'{judge}/app/calibrated')}, "
        f"calibrated + app bias {_after(calibrated)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--judges", default=",".join(JUDGES), help="e.g. hop,search,grade")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    config = {k: v for k, v in vars(args).items() if k != "output"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"config": config, "results": results}, indent=1) + "\n")
    print("bench_judge: " + "; ".join(result_parts(results, args.judges.split(","))))


def result_parts(results: dict[str, Any], judges: list[str]) -> list[str]:
    parts = []
    for label, judge, before in BEFORE:
        if judge not in judges:
            continue
        grammar = _right(results, f"{judge}/{before}/grammar")
        selection = results[f"{judge}/selection"]
        part = (
            f"{label}: before (grammar, {before} prompt) {grammar}, {_now(results, judge)}, "
            f"best setting chosen left-one-out {selection['num_right_leave_one_out']}/"
            f"{selection['num_cases']}"
        )
        if judge == "grade":
            docs = results["grade/first_retrieval"]["documents"]
            top = results["grade/top_score"]
            part += (
                f" (first retrieval holds the answer for {docs['num_passages_hold_answer']}/"
                f"{docs['num_cases']} documents questions; no judge, a threshold on the top "
                f"hit's score: left-one-out {top['num_right_leave_one_out']}/{top['num_cases']})"
            )
        parts.append(part)
    return parts


if __name__ == "__main__":
    main()
