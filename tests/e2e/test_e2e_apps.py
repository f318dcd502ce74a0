"""End to end on the real embedded engines (SmolLM2, MiniLM, FAISS, the MiniLM-cosine
reranker, BM25 web).

Each application answers a fixed question from samples/questions.jsonl over the sample
corpus; the retrieved passages contain the expected source; the three schemes retrieve
the same passages; two applications share the engines at the same time. Answers are
short (max_tokens) so the tier stays within a few minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from primflow.api.documents import Document
from primflow.apps import APPS
from primflow.apps.samples import sample_documents, samples_dir
from primflow.session import EngineStack, Session, embedded_factory

pytestmark = pytest.mark.e2e

MAX_TOKENS = {"max_tokens": 24, "expansion_max_tokens": 48, "situate_max_tokens": 16}


def expected(question_prefix: str) -> dict[str, str]:
    for line in (samples_dir() / "questions.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["question"].startswith(question_prefix):
            return dict(record)
    raise LookupError(question_prefix)


LEAVE = expected("How many days of paid annual leave")
SPEEDUP = expected("What does the paper report about end-to-end speedup")
WARRANTY = expected("How long is the warranty on the Tidepool Marine")


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    stack = EngineStack.for_apps(APPS, embedded_factory())
    async with stack, Session(stack) as opened:
        yield opened


def sources(passages: list) -> set[str]:  # type: ignore[type-arg]
    return {hit.chunk.source for hit in passages}


def docs() -> list[Document]:
    return sample_documents()


async def test_document_apps_answer_from_the_right_source(session: Session) -> None:
    cases = [
        ("naive_rag", LEAVE, docs(), {}),
        ("advanced_rag", SPEEDUP, docs(), {"chunk_size": 300}),
        (
            "contextual_retrieval",
            WARRANTY,
            sample_documents("product_faq.md"),
            {"chunk_size": 600, "chunk_overlap": 0},
        ),
    ]
    for app, record, documents, changes in cases:
        pieces: list[str] = []
        answer = await session.ask(
            app,
            record["question"],
            documents,
            on_text=pieces.append,
            config_changes={**MAX_TOKENS, **changes},
        )
        assert answer.text, app
        assert "".join(pieces).strip() == answer.text
        assert record["source"] in sources(answer.passages), (app, answer.passages)


async def test_search_augmented_answers(session: Session) -> None:
    answer = await session.ask(
        "search_augmented", APPS["search_augmented"].sample_question, config_changes=MAX_TOKENS
    )
    assert answer.text
    judged = [p for p in answer.timing.primitives if p.engine == "judge"]
    assert judged, "the judge runs on its own engine"


@pytest.mark.parametrize("app", ["naive_rag", "advanced_rag"])
async def test_schemes_retrieve_the_same_passages(session: Session, app: str) -> None:
    changes = {**MAX_TOKENS, "chunk_size": 300}
    found = {}
    answers = {}
    for scheme in ("sequential", "parallel", "primflow"):
        answer = answers[scheme] = await session.ask(
            app, LEAVE["question"], docs(), scheme=scheme, config_changes=changes
        )
        found[scheme] = [(h.chunk.source, h.chunk.chunk_id) for h in answer.passages]
    assert found["sequential"] == found["parallel"] == found["primflow"]
    # The uncontended bound: every primitive maps back to the sequential reference.
    for answer in answers.values():
        answer.set_reference(answers["sequential"])
        assert answer.solo is not None and answer.solo.num_unmatched == 0
        assert answer.bound_s is not None and answer.bound_s > 0


async def test_two_apps_colocated_on_the_same_engines(session: Session) -> None:
    changes = {**MAX_TOKENS, "chunk_size": 300}
    naive, advanced = await asyncio.gather(
        session.ask("naive_rag", LEAVE["question"], docs(), config_changes=changes),
        session.ask("advanced_rag", SPEEDUP["question"], docs(), config_changes=changes),
    )
    assert naive.text and advanced.text
    assert LEAVE["source"] in sources(naive.passages)
    assert SPEEDUP["source"] in sources(advanced.passages)
    assert session.runtime.num_running_queries == 0
