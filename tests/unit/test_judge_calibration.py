"""A calibrated Judge: its lowering (decode and prefill params), its checks, the YAML
form, and its scores recorded with the decision on the fake engines in every scheme
(the fake LLM decides a calibrated choice with the real calibration math)."""

from __future__ import annotations

import pytest

from primflow import Judge, Query, build_template, lower
from primflow.api import parse_spec
from primflow.api.template import TemplateError
from primflow.apps import APPS
from primflow.commands.console import format_breakdown
from primflow.engines.llm.choice_scoring import decide
from primflow.graph.ir import PortType
from primflow.session import EngineStack, Session, fake_factory

PROMPT = "Passages:\n{evidence}\nQuestion: {question}\nReply:"
READS = {"question": "question", "evidence": "evidence"}


def lowered_judge(judge: Judge) -> dict[str, dict[str, object]]:
    template = build_template(
        "j", judge, outputs={"decision": "decision"}, inputs={"evidence": PortType.TEXT}
    )
    graph = lower(template, Query("Is it raining?", inputs={"evidence": "N/A"}))
    return {n.name: dict(n.params) for n in graph if n.name.startswith(judge.name)}


def test_calibrate_asks_the_engine_to_score_and_the_prefill_for_a_content_free_prompt() -> None:
    judge = Judge(
        "j",
        prompt=PROMPT,
        reads=READS,
        calibrate=True,
        bias={"yes": 0.5},
        keep_in_prior=("question",),
    )
    params = lowered_judge(judge)
    assert params["j.decode"]["calibrate"] is True
    assert params["j.decode"]["choices"] == ["yes", "no"]
    assert params["j.decode"]["choice_bias"] == {"yes": 0.5}
    assert params["j.prefill"]["content_free"] == "N/A"
    assert params["j.prefill"]["content_free_keeps"] == ["question"]


def test_a_grammar_judge_lowers_as_before() -> None:
    params = lowered_judge(Judge("j", prompt=PROMPT, reads=READS))
    assert "calibrate" not in params["j.decode"] and "content_free" not in params["j.prefill"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"bias": {"yes": 1.0}}, "bias applies with calibrate=True only"),
        ({"calibrate": True, "bias": {"maybe": 1.0}}, "bias names 'maybe'"),
        ({"calibrate": True, "keep_in_prior": ("query",)}, "keep_in_prior names 'query'"),
        ({"calibrate": True, "content_free": " "}, "content_free must be non-empty"),
    ],
)
def test_bad_calibration_settings_are_named(settings: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TemplateError), match=message):
        build_template("j", Judge("j", prompt=PROMPT, reads=READS, **settings), outputs={})  # type: ignore[arg-type]


def test_a_spec_judge_takes_calibrate_and_bias() -> None:
    spec = parse_spec(
        """
name: judged
steps:
  - name: judge
    kind: judge
    calibrate: true
    bias: {"no": 0.25}
    reads: {question: question}
    writes: {decision: decision}
outputs: {decision: decision}
"""
    )
    python = build_template(
        "judged",
        Judge("judge", calibrate=True, bias={"no": 0.25}),
        outputs={"decision": "decision"},
    )
    query = Query("Who won the 1921 Nobel Prize?")
    assert lower(spec, query) == lower(python, query)


@pytest.mark.parametrize("scheme", ["primflow", "sequential", "parallel"])
async def test_the_scores_are_recorded_and_the_decision_is_their_argmax(scheme: str) -> None:
    app = APPS["search_augmented"]
    stack = EngineStack.for_apps([app], fake_factory(latency_scale=0.0))
    async with stack, Session(stack) as session:
        answer = await session.ask(app, "Which RFC published TLS 1.3?", scheme=scheme)
    scores = answer.decision_scores["judge.decode"]
    assert set(scores) == {"yes", "no"}
    for s in scores.values():
        assert s["calibrated"] == pytest.approx(s["logprob"] - s["prior"] + s["bias"], abs=1e-3)
    assert answer.decisions["judge.decode"] == decide(scores)
    assert answer.to_json()["decision_scores"] == {"judge.decode": scores}
    assert "scores: judge.decode: yes " in format_breakdown(answer)
