"""The dynamic apps on the real embedded engines (SmolLM2 on llama.cpp, MiniLM, FAISS).

- multi_hop_rag with the real judge: its decision is constrained by a grammar, so it is
  exactly "yes" or "no" whatever a 135M model thinks; the rounds it asked for are in
  the graph that ran.
- multi_hop_rag with a scripted "no, then yes": a second hop is lowered, optimized and
  appended while the query runs; the real LLM's reformulated query is embedded and
  searched, and the baselines run the same two rounds.
- tool_agent choosing the calculator: the real LLM writes the expression under the
  arithmetic grammar, and the calculator evaluates it without executing model text.
"""

from __future__ import annotations

import re

import pytest

from primflow.apps import APPS
from primflow.session import EngineStack, Session, embedded_factory
from primflow.testing.judge import scripted_judge_factory
from primflow.testing.recording import RecordingEngine

pytestmark = [pytest.mark.e2e, pytest.mark.engines]

CHANGES = {"max_tokens": 16}
MULTI_HOP = APPS["multi_hop_rag"]
AGENT = APPS["tool_agent"]


async def test_the_real_judge_decides_with_a_constrained_choice() -> None:
    stack = EngineStack.for_apps([MULTI_HOP], embedded_factory())
    async with stack, Session(stack) as session:
        answer = await session.ask(
            MULTI_HOP,
            MULTI_HOP.sample_question,
            MULTI_HOP.sample_documents(),
            config_changes=CHANGES,
        )
    assert answer.decisions and set(answer.decisions.values()) <= {"yes", "no"}
    num_steps = list(answer.decisions.values()).count("no")
    assert len(answer.rounds) == len(answer.decisions)
    names = {n.name for n in answer.graph}
    assert all(f"hops.r{i}.step.search" in names for i in range(1, num_steps + 1))
    assert answer.text


async def test_a_second_hop_runs_on_the_real_engines_in_every_scheme() -> None:
    decisions = {"hops.r1.enough.decode": "no", "hops.r2.enough.decode": "yes"}
    factory = scripted_judge_factory(decisions, embedded_factory())
    stack = EngineStack.for_apps([MULTI_HOP], factory)
    passages = {}
    async with stack, Session(stack) as session:
        embedder = session.stack.engines["embedder"]
        assert isinstance(embedder, RecordingEngine)
        for scheme in ("primflow", "sequential"):
            answer = await session.ask(
                MULTI_HOP,
                MULTI_HOP.sample_question,
                MULTI_HOP.sample_documents(),
                scheme=scheme,
                config_changes=CHANGES,
            )
            session.forget_prefixes(answer.query_id)
            [hop] = [r for r in embedder.requests_of(answer.query_id) if ".step." in r.node]
            assert hop.inputs["items"] and hop.inputs["items"][0].strip(), scheme
            assert answer.rounds[0].label == "hops round 1: no"
            assert len(answer.passages) > 2, scheme  # both hops' passages, merged
            passages[scheme] = sorted((h.chunk.source, h.chunk.chunk_id) for h in answer.passages)
    assert passages["primflow"] == passages["sequential"]


async def test_the_calculator_evaluates_the_real_models_expression() -> None:
    decisions = {
        "agent.r1.choose.decode": "calculate",
        "agent.r2.choose.decode": "answer",
    }
    factory = scripted_judge_factory(decisions, embedded_factory())
    stack = EngineStack.for_apps([AGENT], factory)
    async with stack, Session(stack) as session:
        llm = session.stack.engines["llm"]
        assert isinstance(llm, RecordingEngine)
        answer = await session.ask(
            AGENT, AGENT.sample_question, AGENT.sample_documents(), config_changes=CHANGES
        )
        [request] = [r for r in llm.requests if r.node.startswith("answer") and "notes" in r.inputs]
    note = request.inputs["notes"][-1]
    assert re.fullmatch(r"calculator: [-+*/%(). 0-9]+ (= \S+|failed: .+)", note), note
    assert answer.text
