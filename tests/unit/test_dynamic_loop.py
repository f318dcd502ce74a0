"""multi_hop_rag's loop on fake engines: rounds appended while the query runs.

The app with its judge asked from round 1 (``min_hops=1``; the default's unchecked first
hop is tests/unit/test_loop_min_rounds.py). A scripted fake judge decides each round,
so the tests know which rounds must exist;
every engine is a ``RecordingEngine``, so they check what the engines really received:
a hop that was not decided is never submitted, the rounds a decision adds are, and
the baselines run the same rounds and retrieve the same passages.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import pytest

from primflow.apps import APPS, App, multi_hop_rag
from primflow.commands.console import format_breakdown
from primflow.graph.lint import lint
from primflow.runtime.errors import QueryFailed
from primflow.session import Answer, EngineStack, Session, fake_factory
from primflow.testing.judge import scripted_judge_factory
from primflow.testing.recording import RecordingEngine

APP = dataclasses.replace(
    APPS["multi_hop_rag"],
    name="multi_hop_rag_checked",
    build=functools.partial(multi_hop_rag.build, min_hops=1),
)
QUESTION = APP.sample_question


def check(round_index: int) -> str:
    return f"hops.r{round_index}.enough.decode"


async def ask(
    decisions: Mapping[str, str], scheme: str = "primflow", app: App = APP
) -> tuple[Answer, Session]:
    factory = scripted_judge_factory(decisions, fake_factory(latency_scale=0.0))
    stack = EngineStack.for_apps([app], factory)
    async with stack, Session(stack) as session:
        answer = await session.ask(app, QUESTION, APP.sample_documents(), scheme=scheme)
    return answer, session


def submitted(session: Session, engine: str) -> list[str]:
    found = session.stack.engines[engine]
    assert isinstance(found, RecordingEngine)
    return [r.node for r in found.requests]


async def test_enough_evidence_at_once_runs_no_hop() -> None:
    answer, session = await ask({check(1): "yes"})
    assert answer.decisions == {check(1): "yes"}
    assert [r.decision for r in answer.rounds] == ["yes"]
    llm_nodes = submitted(session, "llm")
    assert not [n for n in llm_nodes if n.startswith("hops.")]
    assert "hops.r1.step.embed_query" not in submitted(session, "embedder")  # no hop
    assert "answer.decode" in llm_nodes and answer.text
    assert submitted(session, "embedder").count("embed_question") == 1
    lint(answer.graph)


async def test_a_second_hop_is_appended_and_run() -> None:
    answer, session = await ask({check(1): "no", check(2): "yes"})
    assert answer.decisions == {check(1): "no", check(2): "yes"}
    assert [r.label for r in answer.rounds] == [
        "hops round 1: no",
        "hops ended after 1 steps (yes)",
    ]
    assert "hops.r1.step.embed_query" in submitted(session, "embedder")
    assert check(2) in submitted(session, "judge")
    assert "hops.r2.step.embed_query" not in submitted(session, "embedder")
    # The hop added passages the first retrieval did not hold.
    assert len(answer.passages) > APP.default_config.top_k
    # The grown graph is what ran: it holds every round and lints clean.
    assert {"hops.r1.step.search", check(2), "output.answer"} <= {n.name for n in answer.graph}
    lint(answer.graph)
    timed = {p.node for p in answer.timing.primitives}
    assert {"hops.r1.step.search", "answer.decode"} <= timed
    assert answer.to_json()["rounds"][0]["decision"] == "no"
    # The re-optimization the rounds cost, in the JSON and the timing table.
    reoptimize_s = sum(r.lower_s + r.optimize_s for r in answer.rounds)
    assert reoptimize_s > 0
    assert answer.to_json()["reoptimize_s"] == pytest.approx(reoptimize_s, abs=1e-6)
    table = format_breakdown(answer)
    assert "re-optimization: " in table and "over 2 rounds" in table


async def test_the_loop_stops_at_max_rounds() -> None:
    answer, session = await ask({check(1): "no", check(2): "no", check(3): "no"})
    # MAX_HOPS retrievals: the first, then MAX_HOPS - 1 steps; no check after the last.
    num_steps = multi_hop_rag.MAX_HOPS - 1
    assert len(answer.decisions) == num_steps
    assert check(num_steps + 1) not in submitted(session, "judge")
    assert submitted(session, "embedder").count(f"hops.r{num_steps}.step.embed_query") == 1
    assert answer.rounds[-1].label == f"hops round {num_steps}: no"
    assert answer.text


async def test_a_decision_outside_the_choices_fails_the_query_by_name() -> None:
    # A fake answer that bypasses the grammar: the loop refuses it, naming the choices.
    with pytest.raises(QueryFailed, match=r"loop 'hops': decision 'maybe' is not one of: no, yes"):
        await ask({check(1): "maybe"})


async def test_rounds_of_one_shape_share_a_cached_optimization() -> None:
    app = App("multi_hop_rag_6", lambda: multi_hop_rag.build(max_hops=6, min_hops=1))
    decisions = {check(i): "no" for i in range(1, 6)}
    answer, _ = await ask(decisions, app=app)
    hits = [r.is_cache_hit for r in answer.rounds]
    assert len(hits) == 5
    # From the third step on the evidence list is full: the rounds have one shape.
    assert hits[:2] == [False, False] and any(hits[2:])


@pytest.mark.parametrize("scheme", ["sequential", "parallel"])
async def test_baselines_run_the_same_rounds(scheme: str) -> None:
    decisions = {check(1): "no", check(2): "yes"}
    ours, _ = await ask(decisions)
    theirs, session = await ask(decisions, scheme=scheme)
    assert theirs.decisions == ours.decisions
    assert [p.chunk.text for p in theirs.passages] == [p.chunk.text for p in ours.passages]
    assert theirs.text == ours.text
    assert "hops.r1.step.embed_query" in submitted(session, "embedder")
    # The baseline's graph is the unoptimized p-graph of the same rounds.
    names = {n.name for n in theirs.graph}
    assert {"hops.r1.step.search", check(2), "answer.prefill", "answer.decode"} <= names
    lint(theirs.graph)
