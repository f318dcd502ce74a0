"""The dynamic apps on the real embedded engines (SmolLM2 on llama.cpp, MiniLM, FAISS).

- multi_hop_rag with the real judge: its decision is exactly "yes" or "no" whatever a
  135M model thinks; the rounds it asked for are in the graph that ran.
- multi_hop_rag with the real calibrated judge on a two-hop question whose first
  retrieval misses the fact: the first hop (always run) retrieves it with the expanded
  query (question + best passage), the judge then says "yes" (the argmax of the
  calibrated scores it records), and the part appended on that decision is optimized
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
from primflow.apps.multi_hop_rag import CHAIN_START, HOP_BIAS, MIN_HOPS
from primflow.commands.console import format_breakdown
from primflow.session import EngineStack, Session, embedded_factory
from primflow.testing.judge import scripted_judge_factory
from primflow.testing.recording import RecordingEngine
from primflow.values import Hit

pytestmark = [pytest.mark.e2e, pytest.mark.engines]

CHANGES = {"max_tokens": 16}
# From bench/bench_hops.py (docs/bench/hops_first_hop.json): the first retrieval names
# Fernwood's server vendor but not where it is headquartered, the first hop finds it,
# and the calibrated check after the hop said "yes" on it in the three real runs (by
# 0.35-0.42 nats; a margin moves by ~0.1 between a prompt computed whole and one reusing
# a cached prefix).
TWO_HOP_QUESTION = "Where is the company that sells Fernwood Labs its servers headquartered?"
MULTI_HOP = APPS["multi_hop_rag"]
FIRST_CHECK = f"hops.r{MIN_HOPS}.enough.decode"  # the first hop runs unchecked
ONE_HOP = {FIRST_CHECK: "yes"}
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
    num_hops = MIN_HOPS - 1 + num_steps
    assert all(f"hops.r{i}.step.search" in names for i in range(1, num_hops + 1))
    assert answer.text


async def test_a_two_hop_question_is_answered_in_two_rounds() -> None:
    stack = EngineStack.for_apps([MULTI_HOP], embedded_factory())
    async with stack, Session(stack) as session:
        answer = await session.ask(
            MULTI_HOP, TWO_HOP_QUESTION, MULTI_HOP.sample_documents(), config_changes=CHANGES
        )
    assert set(answer.decision_scores) == set(answer.decisions) == {FIRST_CHECK}
    scores = answer.decision_scores[FIRST_CHECK]
    assert answer.decisions[FIRST_CHECK] == max(scores, key=lambda c: scores[c]["calibrated"])
    assert scores["yes"]["bias"] == HOP_BIAS["yes"]
    assert all(s["logprob"] < 0 and s["prior"] < 0 for s in scores.values())
    assert answer.decisions[FIRST_CHECK] == "yes"
    assert [r.label for r in answer.rounds] == ["hops ended after 1 steps (yes)"]
    # The first retrieval names the vendor, not its headquarters; the hop finds them.
    *start, found = answer.passages
    assert len(start) == CHAIN_START
    assert not any("headquartered" in h.chunk.text for h in start)
    assert "Northwind Hardware is headquartered in Hamburg" in found.chunk.text
    ran = {p.node for p in answer.timing.primitives}
    assert {"hops.r1.step.search", FIRST_CHECK, "answer.decode"} <= ran
    table = format_breakdown(answer)
    assert "round: hops ended after 1 steps (yes): +" in table
    assert "optimized incrementally" in table
    assert f"scores: {FIRST_CHECK}: yes " in table
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
            assert answer.rounds[0].label == "hops ended after 1 steps (yes)"
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
