"""The cases bench/bench_judge.py asks each judge: what it reads and the right decision.

- hop check (multi_hop_rag): per question of ``samples/multihop_questions.jsonl``, the
  app's first retrieval, and, when it misses the answer, it plus the answer's passage.
- search judge (search_augmented): the questions of ``samples/search_questions.jsonl``.
- corrective grade (corrective_rag): per question of
  ``samples/corrective_questions.jsonl``, the app's first retrieval over
  ``samples/docs``; right is "yes" iff the record expects the documents to answer it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from primflow.apps import APPS, App, multi_hop_rag
from primflow.apps.samples import sample_questions
from primflow.session import EngineStack, Session, embedded_factory
from primflow.testing.judge import scripted_judge_factory
from primflow.values import Chunk, Hit

GRADE_DECODE = "grade.decode"  # corrective_rag's judge decode node
# multi_hop_rag asked before any hop: its judge decides on the first retrieval.
NO_FIRST_HOP = dataclasses.replace(
    APPS["multi_hop_rag"], build=functools.partial(multi_hop_rag.build, min_hops=1)
)


@dataclass(frozen=True)
class Case:
    judge: str  # "hop", "search" or "grade"
    question: str
    expected: str  # "yes" or "no"
    evidence: list[Hit] | None = None  # the passages the judge reads (hop, grade)
    kind: str = ""  # hop: "first retrieval"/"with the fact"; grade: "documents"/"web"
    holds_answer: bool | None = None  # whether the evidence holds answer_contains


def holds(hits: list[Hit], answer: str) -> bool:
    return any(answer.lower() in h.chunk.text.lower() for h in hits)


def fact_passage(source: str, answer: str) -> Hit:
    """The first paragraph of ``samples/multihop/<source>`` that holds ``answer`` as
    words (the second hop's fact in every record of the set)."""
    app = APPS["multi_hop_rag"]
    [document] = [d for d in app.sample_documents() if Path(d.source).name == source]
    words = re.compile(rf"\b{re.escape(answer)}\b", re.IGNORECASE)
    paragraph = next(p for p in document.text.split("\n\n") if words.search(p))
    return Hit(Chunk(paragraph.strip(), source, -1), 0.0)


async def first_retrievals(app: App, decode: str, questions: list[str]) -> list[list[Hit]]:
    """Each question's first retrieval by ``app`` on the real embedder and index (its
    judge forced to "yes", which keeps the retrieved passages as the evidence)."""
    factory = scripted_judge_factory({decode: "yes"}, embedded_factory())
    found = []
    async with EngineStack.for_apps([app], factory) as stack, Session(stack) as session:
        for question in questions:
            answer = await session.ask(
                app, question, app.sample_documents(), config_changes={"max_tokens": 1}
            )
            found.append(list(answer.passages))
    return found


async def hop_cases() -> list[Case]:
    """Per multi-hop question: the app's first retrieval, and it plus the answer's passage."""
    records = sample_questions("multihop_questions.jsonl")
    questions = [r["question"] for r in records]
    retrievals = await first_retrievals(NO_FIRST_HOP, "hops.r1.enough.decode", questions)
    cases = []
    for record, first in zip(records, retrievals, strict=True):
        is_holding = holds(first, record["answer_contains"])
        expected = "yes" if is_holding else "no"
        cases.append(Case("hop", record["question"], expected, first, "first retrieval"))
        if not is_holding:
            fact = fact_passage(record["source"], record["answer_contains"])
            cases.append(Case("hop", record["question"], "yes", [*first, fact], "with the fact"))
    return cases


def search_cases() -> list[Case]:
    return [
        Case("search", r["question"], "yes" if r["needs_search"] else "no")
        for r in sample_questions("search_questions.jsonl")
    ]


async def grade_cases() -> list[Case]:
    """Per corrective question: the app's first retrieval (top 3 over ``samples/docs``)."""
    records = sample_questions("corrective_questions.jsonl")
    questions = [r["question"] for r in records]
    retrievals = await first_retrievals(APPS["corrective_rag"], GRADE_DECODE, questions)
    return [
        Case(
            "grade",
            record["question"],
            "yes" if record["expects"] == "documents" else "no",
            first,
            record["expects"],
            holds(first, record["answer_contains"]),
        )
        for record, first in zip(records, retrievals, strict=True)
    ]
