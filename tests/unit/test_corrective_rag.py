"""corrective_rag's grade on fake engines: a grammar-constrained yes/no (the setting
bench/bench_judge.py measured best) whose decision picks the evidence.

A grade of "yes" keeps the retrieved passages and never sends the web search; "no"
sends the question to the web search and the answer reads its hits instead, in every
scheme. Unscripted, the fake judge picks one of the allowed answers by the prompt, and
the branch follows that decision. The engines are wrapped in ``RecordingEngine``, so
the checks read what each engine really received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from primflow import lower
from primflow.apps import APPS
from primflow.apps.corrective_rag import GRADE_PROMPT
from primflow.apps.samples import sample_questions
from primflow.engines.base import Engine, EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.session import Answer, EngineStack, Session, fake_factory
from primflow.session.stack import EngineFactory
from primflow.testing.judge import scripted_judge_factory
from primflow.testing.recording import RecordingEngine

APP = APPS["corrective_rag"]
GRADE = "grade.decode"
SCHEMES = ("primflow", "sequential", "parallel")


def fakes() -> EngineFactory:
    return fake_factory(latency_scale=0.0)


def recorded_fakes() -> EngineFactory:
    inner = fakes()

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine:
        engine = inner(name, kind, budget, profile)
        assert isinstance(engine, Engine)
        return RecordingEngine(engine)

    return build


async def session_with(factory: EngineFactory) -> AsyncIterator[Session]:
    async with EngineStack.for_apps([APP], factory) as stack, Session(stack) as session:
        yield session


@pytest.fixture
async def graded_yes() -> AsyncIterator[Session]:
    async for session in session_with(scripted_judge_factory({GRADE: "yes"}, fakes())):
        yield session


@pytest.fixture
async def graded_no() -> AsyncIterator[Session]:
    async for session in session_with(scripted_judge_factory({GRADE: "no"}, fakes())):
        yield session


def web_requests(session: Session, answer: Answer) -> list[EngineRequest]:
    web = session.stack.engines["web_search"]
    assert isinstance(web, RecordingEngine)
    return web.requests_of(answer.query_id)


async def ask(session: Session, scheme: str) -> Answer:
    return await session.ask(APP, APP.sample_question, APP.sample_documents(), scheme=scheme)


def test_the_grade_is_a_constrained_choice_on_the_measured_wording() -> None:
    graph = lower(APP.template(), APP.sample_query())
    params = graph.node(GRADE).params
    assert params["choices"] == ["yes", "no"] and "calibrate" not in params
    prefill = graph.node("grade.prefill")
    assert prefill.params["template"] == GRADE_PROMPT and "content_free" not in prefill.params
    assert {"hits", "question"} <= {port.name for port in prefill.inputs}


async def test_a_yes_keeps_the_passages_and_never_sends_the_web_search(
    graded_yes: Session,
) -> None:
    for scheme in SCHEMES:
        answer = await ask(graded_yes, scheme)
        assert answer.decisions == {GRADE: "yes"}, scheme
        assert web_requests(graded_yes, answer) == [], scheme
        assert answer.passages and all(
            not h.chunk.source.startswith("http") for h in answer.passages
        ), scheme
        assert "web_search" not in {p.node for p in answer.timing.primitives}, scheme


async def test_a_no_searches_the_web_with_the_question(graded_no: Session) -> None:
    for scheme in SCHEMES:
        answer = await ask(graded_no, scheme)
        assert answer.decisions == {GRADE: "no"}, scheme
        [search] = web_requests(graded_no, answer)
        assert search.inputs["queries"] == [APP.sample_question], scheme
        assert len(answer.passages) == APP.default_config.web_top_k, scheme
        assert all(h.chunk.source.startswith("http") for h in answer.passages), scheme


async def test_the_unscripted_grade_is_an_allowed_answer_and_the_branch_follows_it() -> None:
    questions = [r["question"] for r in sample_questions(APP.questions_file)]
    decisions = set()
    async for session in session_with(recorded_fakes()):
        for question in questions:
            answer = await session.ask(APP, question, APP.sample_documents())
            assert answer.decisions[GRADE] in ("yes", "no") and not answer.decision_scores
            num_searches = len(web_requests(session, answer))
            assert num_searches == (answer.decisions[GRADE] == "no"), question
            decisions.add(answer.decisions[GRADE])
    assert decisions == {"yes", "no"}  # both branches ran (the fake picks by the prompt)
