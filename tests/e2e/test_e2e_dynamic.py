"""The dynamic apps on the real embedded engines (SmolLM2 on llama.cpp, MiniLM, FAISS).

- multi_hop_rag with the real judge: its decision is exactly "yes" or "no" whatever a
  135M model thinks; the rounds it asked for are in the graph that ran.
- multi_hop_rag with the real calibrated judge on a two-hop question whose first
  retrieval misses the fact: the judge asks for a second hop (the decision is the
  argmax of the calibrated scores it records), the hop's expanded query (question +
  best passage) retrieves the missing fact, and the second round is optimized
  incrementally and shown in the timing table.
- multi_hop_rag after a forced hop: the answer's prompt lists the chain (the first
  retrieval's passages, then the hop's best new hit holding the fact), not all evidence.
- multi_hop_rag with a scripted "no, then yes": a second hop is lowered, optimized and
  appended while the query runs; the expanded query is embedded and
  searched, and the baselines run the same two rounds.
- tool_agent choosing the calculator: the real LLM writes the expression under the
  arithmetic grammar, and the calculator evaluates it without executing model text.
"""

from __future__ import annotations

import re

import pytest

from primflow.apps import APPS
from primflow.apps.multi_hop_rag import CHAIN_START, HOP_BIAS
from primflow.commands.console import format_breakdown
from primflow.session import EngineStack, Session, embedded_factory
from primflow.testing.judge import scripted_judge_factory
from primflow.testing.recording import RecordingEngine
from primflow.values import Hit

pytestmark = [pytest.mark.e2e, pytest.mark.engines]

CHANGES = {"max_tokens": 16}
# From bench/bench_hops.py (docs/bench/hops.json): the sample question's first retrieval
# names Kestrel's lead but not where she works, and the calibrated hop check said "no"
# on it in every real run (the same prompt's yes-no margin moves by ~0.1 nats between a
# prompt computed whole and one reusing a cached prefix).
SECOND_HOP_QUESTION = "Which city does the lead engineer of Project Kestrel work in?"
MULTI_HOP = APPS["multi_hop_rag"]
ONE_HOP = {"hops.r1.enough.decode": "no", "hops.r2.enough.decode": "yes"}
AGENT = APPS["tool_agent"]


def chunk_keys(hits: list[Hit]) -> set[tuple[str, int]]:
    return {(h.chunk.source, h.chunk.chunk_id) for h in hits}


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


async def test_the_calibrated_judge_asks_for_a_second_hop() -> None:
    stack = EngineStack.for_apps([MULTI_HOP], embedded_factory())
    async with stack, Session(stack) as session:
        answer = await session.ask(
            MULTI_HOP, SECOND_HOP_QUESTION, MULTI_HOP.sample_documents(), config_changes=CHANGES
        )
    assert set(answer.decision_scores) == set(answer.decisions)
    for node, decision in answer.decisions.items():
        scores = answer.decision_scores[node]
        assert decision == max(scores, key=lambda choice: scores[choice]["calibrated"]), node
        assert scores["yes"]["bias"] == HOP_BIAS["yes"]
        assert all(s["logprob"] < 0 and s["prior"] < 0 for s in scores.values())
    assert answer.decisions["hops.r1.enough.decode"] == "no"
    assert answer.rounds[0].label == "hops round 1: no"
    # The first retrieval misses where Dana Whitfield (Kestrel's lead) works; the hop finds it.
    assert any(
        "Dana Whitfield works from the Lisbon office" in h.chunk.text for h in answer.passages
    )
    ran = {p.node for p in answer.timing.primitives}
    assert {"hops.r1.step.search", "hops.r2.enough.decode"} <= ran
    table = format_breakdown(answer)
    assert "round: hops round 1: no: +" in table and "optimized incrementally" in table
    assert "scores: hops.r1.enough.decode: yes " in table
    assert answer.text


async def test_a_second_hop_runs_on_the_real_engines_in_every_scheme() -> None:
    factory = scripted_judge_factory(ONE_HOP, embedded_factory())
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


async def test_after_a_hop_the_answer_reads_the_chain() -> None:
    """The sample question (Kestrel's lead, then where she works) with a forced hop: the
    answer's prompt lists the first retrieval's passages, then the hop's best new hit."""
    factory = scripted_judge_factory(ONE_HOP, embedded_factory())
    stack = EngineStack.for_apps([MULTI_HOP], factory)
    question, documents = MULTI_HOP.sample_question, MULTI_HOP.sample_documents()
    async with stack, Session(stack) as session:
        llm = session.stack.engines["llm"]
        assert isinstance(llm, RecordingEngine)
        answer = await session.ask(MULTI_HOP, question, documents, config_changes=CHANGES)
        prompt = llm.prompt(f"{answer.query_id}/answer")
    assert answer.decisions == ONE_HOP
    *start, found = answer.passages
    assert len(start) == CHAIN_START and found not in start
    assert "lead engineer of Project Kestrel is Dana Whitfield" in " ".join(
        h.chunk.text for h in start
    )
    assert "Dana Whitfield works from the Lisbon office" in found.chunk.text
    assert chunk_keys([found]) <= chunk_keys(answer.outputs["evidence"])
    assert len(answer.outputs["evidence"]) > len(answer.passages)
    listed = "\n".join(f"[{i}] {h.chunk.text}" for i, h in enumerate(answer.passages, 1))
    assert listed in prompt and f"[{len(answer.passages) + 1}]" not in prompt


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
