"""search_augmented's two branches on fake engines, in every scheme.

A fake judge answers "yes": the web search runs, its hits reach the prompt of the
answer LLM call, and primflow, ``sequential`` and ``parallel`` retrieve the same hits.
A fake judge answering "no" skips the search: no web-search request, no hits, and no
search results in the answer prompt. The engines are wrapped in ``RecordingEngine``, so
the checks read what the engines really received, whichever scheme submitted it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from primflow.apps import APPS
from primflow.graph.ir import Op
from primflow.session import Answer, EngineStack, Session, fake_factory
from primflow.testing.judge import fixed_judge_factory
from primflow.testing.recording import RecordingEngine

SCHEMES = ("primflow", "sequential", "parallel")
QUESTION = APPS["search_augmented"].sample_question


async def session_for(decision: str) -> AsyncIterator[Session]:
    factory = fixed_judge_factory(decision, fake_factory(latency_scale=0.001))
    stack = EngineStack.for_apps(["search_augmented"], factory)
    async with stack, Session(stack) as session:
        yield session


@pytest.fixture
async def yes_session() -> AsyncIterator[Session]:
    async for session in session_for("Yes."):
        yield session


@pytest.fixture
async def no_session() -> AsyncIterator[Session]:
    async for session in session_for("No"):
        yield session


def recorded(session: Session, engine: str) -> RecordingEngine:
    found = session.stack.engines[engine]
    assert isinstance(found, RecordingEngine)
    return found


def hit_keys(answer: Answer) -> list[tuple[str, int]]:
    return [(h.chunk.source, h.chunk.chunk_id) for h in answer.passages]


def answer_prompt(session: Session, answer: Answer) -> str:
    return recorded(session, "llm").prompt(f"{answer.query_id}/answer")


async def ask_every_scheme(session: Session) -> dict[str, Answer]:
    answers: dict[str, Any] = {}
    for scheme in SCHEMES:
        answers[scheme] = await session.ask("search_augmented", QUESTION, scheme=scheme)
    return answers


async def test_yes_runs_the_search_and_its_hits_reach_the_answer_prompt(
    yes_session: Session,
) -> None:
    answers = await ask_every_scheme(yes_session)
    web = recorded(yes_session, "web_search")
    for scheme, answer in answers.items():
        [search] = web.requests_of(answer.query_id)
        assert search.op is Op.WEB_SEARCH, scheme
        assert search.inputs["queries"] == [QUESTION], scheme
        assert "web_search" in {p.node for p in answer.timing.primitives}, scheme
        assert len(answer.passages) == APPS["search_augmented"].default_config.web_top_k
        prompt = answer_prompt(yes_session, answer)
        for hit in answer.passages:
            assert hit.chunk.text in prompt, (scheme, hit)
        assert answer.text


async def test_yes_every_scheme_retrieves_the_same_web_results(yes_session: Session) -> None:
    answers = await ask_every_scheme(yes_session)
    keys = {scheme: hit_keys(answer) for scheme, answer in answers.items()}
    assert keys["primflow"], "the search ran and found hits"
    assert keys["sequential"] == keys["parallel"] == keys["primflow"]
    # Same hits, same prompt: the deterministic fake LLM writes the same answer.
    assert len({answer.text for answer in answers.values()}) == 1


async def test_no_skips_the_search(no_session: Session) -> None:
    answers = await ask_every_scheme(no_session)
    web = recorded(no_session, "web_search")
    for scheme, answer in answers.items():
        assert web.requests_of(answer.query_id) == [], scheme
        assert answer.passages == [], scheme
        assert "web_search" not in {p.node for p in answer.timing.primitives}, scheme
        prompt = answer_prompt(no_session, answer)
        assert QUESTION in prompt and "[1]" not in prompt, scheme
        assert answer.text, scheme
