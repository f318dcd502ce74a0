"""A loop's ``min_rounds``: the first steps run without a check.

multi_hop_rag with ``min_hops=2`` (``Loop(min_rounds=1)``) on fake engines with a
scripted judge: the first hop is lowered with the query, the judge is first asked in
round 2 (never in round 1), and the rounds after it are appended as decided.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import pytest

from primflow import Query, lower_query
from primflow.api.components import Loop
from primflow.api.spec import SpecError, parse_spec
from primflow.apps import APPS, App, multi_hop_rag
from primflow.apps.samples import samples_dir
from primflow.graph.lint import lint
from primflow.session import Answer, EngineStack, Session, fake_factory
from primflow.testing.judge import scripted_judge_factory
from primflow.testing.recording import RecordingEngine

BASE = APPS["multi_hop_rag"]
APP = App("multi_hop_rag_first_hop", functools.partial(multi_hop_rag.build, min_hops=2))


def check(round_index: int) -> str:
    return f"hops.r{round_index}.enough.decode"


async def ask(decisions: Mapping[str, str]) -> tuple[Answer, dict[str, list[str]]]:
    factory = scripted_judge_factory(decisions, fake_factory(latency_scale=0.0))
    stack = EngineStack.for_apps([APP], factory)
    async with stack, Session(stack) as session:
        answer = await session.ask(APP, BASE.sample_question, BASE.sample_documents())
        submitted = {}
        for name, engine in session.stack.engines.items():
            assert isinstance(engine, RecordingEngine)
            submitted[name] = [r.node for r in engine.requests]
    return answer, submitted


def sample_query() -> Query:
    return BASE.query(BASE.sample_question, BASE.sample_documents())


def test_the_first_step_is_lowered_with_the_query() -> None:
    lowered = lower_query(multi_hop_rag.build(min_hops=2), sample_query())
    assert lowered.growth is not None
    names = {n.name for n in lowered.graph}
    assert {"hops.r1.step.search", "hops.r1.step.extend_chain", check(2)} <= names
    assert check(1) not in names
    assert lowered.growth.triggers == frozenset({check(2)})
    lint(lowered.graph)


async def test_the_judge_first_decides_after_the_first_hop() -> None:
    answer, submitted = await ask({check(2): "yes"})
    assert answer.decisions == {check(2): "yes"}
    assert [r.label for r in answer.rounds] == ["hops ended after 1 steps (yes)"]
    assert check(1) not in submitted["judge"] and check(2) in submitted["judge"]
    assert "hops.r1.step.embed_query" in submitted["embedder"]
    assert "hops.r2.step.embed_query" not in submitted["embedder"]
    # The chain: the first retrieval's passages, then the hop's best new one.
    assert len(answer.passages) == multi_hop_rag.CHAIN_START + 1
    assert answer.text


async def test_a_no_after_the_first_hop_appends_the_next() -> None:
    answer, submitted = await ask({check(2): "no"})
    assert answer.decisions == {check(2): "no"}
    assert [r.label for r in answer.rounds] == ["hops round 2: no"]  # max_rounds reached
    assert "hops.r2.step.embed_query" in submitted["embedder"]
    assert check(3) not in submitted["judge"]
    lint(answer.graph)


def test_an_unchecked_round_is_the_same_as_a_checked_no() -> None:
    """Forced first hop + decisions == the checked loop with "no" first: same work."""
    forced = lower_query(multi_hop_rag.build(min_hops=2), sample_query())
    checked = lower_query(multi_hop_rag.build(min_hops=1), sample_query())
    assert forced.growth is not None and checked.growth is not None
    forced.growth.attach(forced.graph)
    checked.growth.attach(checked.graph)
    grown = forced.growth.unroll(["yes"])
    whole = checked.growth.unroll(["no", "yes"])
    work = {n.name for n in whole if n.engine is not None}
    unchecked = {n for n in work if not n.startswith("hops.r1.enough.")}
    assert work - unchecked  # the checked loop asked the judge in round 1
    assert {n.name for n in grown if n.engine is not None} == unchecked


@pytest.mark.parametrize(
    ("min_rounds", "max_rounds", "num_steps", "expected"),
    [
        (2, 2, 1, r"min_rounds must be >= 0 and < max_rounds \(2\), got 2"),
        (-1, 2, 1, r"min_rounds must be >= 0 and < max_rounds \(2\), got -1"),
        (1, 3, 2, "min_rounds needs a loop with one step"),
    ],
)
def test_bad_min_rounds_are_refused(
    min_rounds: int, max_rounds: int, num_steps: int, expected: str
) -> None:
    template = multi_hop_rag.build()
    [loop] = [c for c in template.components if isinstance(c, Loop)]
    step = next(iter(loop.steps.values()))
    steps = {f"s{i}": step for i in range(num_steps)}
    bad = Loop(
        "hops",
        check=loop.check,
        steps=steps,
        state={n: n for n in loop.state_names},
        results={"evidence": "evidence"},
        max_rounds=max_rounds,
        min_rounds=min_rounds,
    )
    with pytest.raises(ValueError, match=expected):
        bad.validate()


def test_a_loop_spec_takes_min_rounds() -> None:
    text = (samples_dir() / "specs" / "multi_hop_rag.yaml").read_text()
    assert "min_rounds: 1" in text
    lowered = lower_query(parse_spec(text), sample_query())
    assert lowered.growth is not None and lowered.growth.triggers == frozenset({check(2)})
    checked = lower_query(
        parse_spec(text.replace("min_rounds: 1", "min_rounds: 0")), sample_query()
    )
    assert checked.growth is not None and checked.growth.triggers == frozenset({check(1)})
    with pytest.raises(SpecError, match=r"min_rounds must be >= 0 and < max_rounds"):
        parse_spec(text.replace("min_rounds: 1", "min_rounds: 2"))
