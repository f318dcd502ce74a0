"""search_augmented with the real judge (SmolLM2-135M on llama.cpp): its decision is the
constrained choice, and the search branch follows it.

The judge's decode carries the allowed answers, so what it writes is exactly "yes" or
"no"; the web search runs for a "yes" and is never sent for a "no" (the branch is
dropped, not run and discarded). The decision is in the answer's JSON and the timing
table. How often a 135M model's choice matches whether a question needs a search is
measured by bench/bench_dynamic.py (docs/results/dynamic.md), not asserted here.
"""

from __future__ import annotations

import pytest

from primflow.apps import APPS
from primflow.apps.samples import sample_questions
from primflow.commands.console import format_breakdown
from primflow.engines.base import Engine, EngineKind
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Op
from primflow.session import EngineStack, Session, embedded_factory
from primflow.session.stack import EngineFactory
from primflow.testing.recording import RecordingEngine

pytestmark = [pytest.mark.e2e, pytest.mark.engines]

APP = APPS["search_augmented"]
NUM_QUESTIONS = 4  # two that need a search, two that do not (the set interleaves them)


def recording_factory() -> EngineFactory:
    inner = embedded_factory()

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine:
        return RecordingEngine(inner(name, kind, budget, profile))

    return build


async def test_the_search_follows_the_judges_constrained_choice() -> None:
    records = sample_questions("search_questions.jsonl")[:NUM_QUESTIONS]
    assert {r["needs_search"] for r in records} == {True, False}
    stack = EngineStack.for_apps([APP], recording_factory())
    async with stack, Session(stack) as session:
        judge, web = session.stack.engines["judge"], session.stack.engines["web_search"]
        assert isinstance(judge, RecordingEngine) and isinstance(web, RecordingEngine)
        for record in records:
            answer = await session.ask(APP, record["question"], config_changes={"max_tokens": 8})
            [decode] = [r for r in judge.requests_of(answer.query_id) if r.op is Op.LLM_DECODE]
            assert decode.params["choices"] == ["yes", "no"]
            decision = answer.decisions["judge.decode"]
            assert decision in ("yes", "no")
            num_searches = len(web.requests_of(answer.query_id))
            assert num_searches == (1 if decision == "yes" else 0), record["question"]
            assert bool(answer.passages) == (decision == "yes")
            assert answer.to_json()["decisions"] == {"judge.decode": decision}
            assert f"judge.decode -> {decision}" in format_breakdown(answer)
            assert answer.text
