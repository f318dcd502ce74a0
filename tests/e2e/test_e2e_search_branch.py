"""search_augmented's search branch on the real engines (SmolLM2 answers, BM25 web search
over samples/web), with the judge's decision forced by a fake judge engine: a 135M
model's own yes/no is not something a test can rely on, the rest runs for real.

Judge says yes: the web search runs in every scheme, finds the expected page, its hits
are in the prompt the real LLM receives, and primflow, ``sequential`` and ``parallel``
retrieve the same hits. Judge says no: no web-search request and no hits.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from primflow.apps import APPS
from primflow.apps.samples import samples_dir
from primflow.session import EngineStack, Session, embedded_factory
from primflow.testing.judge import fixed_judge_factory
from primflow.testing.recording import RecordingEngine

pytestmark = pytest.mark.e2e

SCHEMES = ("primflow", "sequential", "parallel")
CHANGES = {"max_tokens": 16}
QUESTION = APPS["search_augmented"].sample_question


def expected_source() -> str:
    for line in (samples_dir() / "web_questions.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["question"] == QUESTION:
            return str(record["source"])
    raise LookupError(QUESTION)


async def session_for(decision: str) -> AsyncIterator[Session]:
    factory = fixed_judge_factory(decision, embedded_factory())
    stack = EngineStack.for_apps(["search_augmented"], factory)
    async with stack, Session(stack) as session:
        yield session


@pytest.fixture
async def yes_session() -> AsyncIterator[Session]:
    async for session in session_for("yes"):
        yield session


@pytest.fixture
async def no_session() -> AsyncIterator[Session]:
    async for session in session_for("no"):
        yield session


def recorded(session: Session, engine: str) -> RecordingEngine:
    found = session.stack.engines[engine]
    assert isinstance(found, RecordingEngine)
    return found


async def test_yes_searches_and_every_scheme_answers_from_the_same_hits(
    yes_session: Session,
) -> None:
    web, llm = recorded(yes_session, "web_search"), recorded(yes_session, "llm")
    found = {}
    for scheme in SCHEMES:
        answer = await yes_session.ask(
            "search_augmented", QUESTION, scheme=scheme, config_changes=CHANGES
        )
        yes_session.forget_prefixes(answer.query_id)  # each scheme computes its own prompt
        assert len(web.requests_of(answer.query_id)) == 1, scheme
        assert expected_source() in {h.chunk.source for h in answer.passages}, scheme
        prompt = llm.prompt(f"{answer.query_id}/answer")
        assert all(h.chunk.text in prompt for h in answer.passages), scheme
        assert answer.text, scheme
        found[scheme] = [(h.chunk.source, h.chunk.chunk_id) for h in answer.passages]
    assert found["sequential"] == found["parallel"] == found["primflow"]


async def test_no_skips_the_search(no_session: Session) -> None:
    web, llm = recorded(no_session, "web_search"), recorded(no_session, "llm")
    answer = await no_session.ask("search_augmented", QUESTION, config_changes=CHANGES)
    assert web.requests == [] and answer.passages == []
    prompt = llm.prompt(f"{answer.query_id}/answer")
    assert QUESTION in prompt and "[1]" not in prompt
    assert answer.text
