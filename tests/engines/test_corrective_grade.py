"""corrective_rag's grade with the real judge (SmolLM2-135M on llama.cpp) on the real
retrieval over the sample documents: "web" for a question only the web sample answers,
"documents" for one the documents answer, and the evidence follows the grade.

The two questions are ones the grade (grammar-constrained, the app's wording) got right
in each of the bench/bench_judge.py runs (docs/results/dynamic.md). On the 20 sample
questions it is right on about 13 of 20 and says "yes" to several web questions too
(among them the app's own sample question), so this pair shows that both branches
follow the real model's grade, not that the grade is reliable: it is a pair the
measurement found right, and a different pair could fail.
"""

from __future__ import annotations

import pytest

from primflow.apps import APPS
from primflow.apps.samples import sample_questions
from primflow.session import EngineStack, Session, embedded_factory

pytestmark = pytest.mark.engines

APP = APPS["corrective_rag"]
WEB_QUESTION = "Which RFC published TLS 1.3?"
DOCUMENTS_QUESTION = "How many days of paid annual leave do full-time employees get?"


def record(question: str) -> dict[str, str]:
    [found] = [r for r in sample_questions(APP.questions_file) if r["question"] == question]
    return found


async def test_the_real_grade_picks_the_web_or_the_documents() -> None:
    stack = EngineStack.for_apps([APP], embedded_factory())
    async with stack, Session(stack) as session:
        answers = {
            question: await session.ask(
                APP, question, APP.sample_documents(), config_changes={"max_tokens": 8}
            )
            for question in (WEB_QUESTION, DOCUMENTS_QUESTION)
        }
    web, documents = answers[WEB_QUESTION], answers[DOCUMENTS_QUESTION]
    assert record(WEB_QUESTION)["expects"] == "web"
    assert record(DOCUMENTS_QUESTION)["expects"] == "documents"

    assert web.decisions == {"grade.decode": "no"}
    assert "web_search" in {p.node for p in web.timing.primitives}
    assert web.passages and all(h.chunk.source.startswith("https://") for h in web.passages)
    assert any(record(WEB_QUESTION)["answer_contains"] in h.chunk.text for h in web.passages)

    assert documents.decisions == {"grade.decode": "yes"}
    assert "web_search" not in {p.node for p in documents.timing.primitives}
    answer = record(DOCUMENTS_QUESTION)["answer_contains"]
    assert any(answer in h.chunk.text for h in documents.passages)
    assert not any(h.chunk.source.startswith("https://") for h in documents.passages)
