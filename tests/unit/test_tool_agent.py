"""tool_agent on fake engines, and its calculator.

The judge is scripted per step, so each test knows which tool runs; the engines are
recorded, so the tests read what each tool really sent. The calculator evaluates only
arithmetic (an AST walk, never ``eval``) and reports a refused expression back to the
agent as a note instead of failing the query.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from primflow.apps import APPS
from primflow.apps.tools import ARITHMETIC_GRAMMAR, ArithmeticError_, calculate, evaluate_arithmetic
from primflow.engines.llm.grammar import decode_grammar
from primflow.session import Answer, EngineStack, Session, fake_factory
from primflow.testing.fake_llm import FakeLLM
from primflow.testing.judge import scripted_judge_factory
from primflow.testing.recording import RecordingEngine

APP = APPS["tool_agent"]


def step(index: int) -> str:
    return f"agent.r{index}.choose.decode"


async def ask(
    decisions: Mapping[str, str], expression: str | None = None
) -> tuple[Answer, Session]:
    factory = scripted_judge_factory(decisions, fake_factory(latency_scale=0.0))
    stack = EngineStack.for_apps([APP], factory)
    async with stack, Session(stack) as session:
        llm = session.stack.engines["llm"]
        assert isinstance(llm, RecordingEngine) and isinstance(llm.inner, FakeLLM)
        if expression is not None:
            llm.inner.set_response("agent.r2.step.write_expression.decode", expression)
        answer = await session.ask(APP, APP.sample_question, APP.sample_documents())
    return answer, session


def sent(session: Session, engine: str) -> list[str]:
    found = session.stack.engines[engine]
    assert isinstance(found, RecordingEngine)
    return [r.node for r in found.requests]


def notes_in_answer_prompt(session: Session) -> str:
    found = session.stack.engines["llm"]
    assert isinstance(found, RecordingEngine)
    [request] = [r for r in found.requests if "notes" in r.inputs and r.node.startswith("answer")]
    return "\n".join(request.inputs["notes"])


async def test_the_chosen_tools_run_in_order_and_only_they() -> None:
    answer, session = await ask(
        {step(1): "retrieve", step(2): "calculate", step(3): "answer"}, expression="28 * 2"
    )
    assert list(answer.decisions.values()) == ["retrieve", "calculate", "answer"]
    assert "agent.r1.step.search" in sent(session, "vector_index")
    assert "agent.r2.step.write_expression.decode" in sent(session, "llm")
    assert sent(session, "web_search") == []  # never chosen, never sent
    assert "calculator: 28 * 2 = 56" in notes_in_answer_prompt(session)


async def test_web_search_is_a_tool_the_agent_can_pick() -> None:
    answer, session = await ask({step(1): "web_search", step(2): "answer"})
    assert sent(session, "web_search") == ["agent.r1.step.web_search"]
    assert any(p.chunk.source.startswith("https://") for p in answer.passages)


async def test_a_refused_expression_is_a_note_not_a_failure() -> None:
    _, session = await ask(
        {step(1): "retrieve", step(2): "calculate", step(3): "answer"},
        expression="__import__('os').system('echo hi')",
    )
    assert "failed: not arithmetic: a call at column 0" in notes_in_answer_prompt(session)


@pytest.mark.parametrize(
    ("expression", "value"),
    [("1 + 2 * 3", 7.0), ("(12 + 30) / 4", 10.5), ("-2 ** 3", -8.0), ("7 % 4", 3.0)],
)
def test_arithmetic_is_evaluated(expression: str, value: float) -> None:
    assert evaluate_arithmetic(expression) == value


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("open('x')", "a call"),
        ("x + 1", "a name"),
        ("(1).real", "an attribute"),
        ("2 ** 1000", "exponent"),
        ("1 / 0", "division by zero"),
        ("9" * 201, "longer than"),
        ("True + 1", "a truth value"),
        ("[1, 2]", "List"),
        ("", "empty"),
    ],
)
def test_anything_but_arithmetic_is_refused_by_name(expression: str, reason: str) -> None:
    with pytest.raises(ArithmeticError_, match=reason):
        evaluate_arithmetic(expression)


def test_the_calculator_function_adds_a_note() -> None:
    assert calculate.fn(["q"], "2 + 2") == ["q", "calculator: 2 + 2 = 4"]


def test_the_expression_decode_is_grammar_constrained() -> None:
    assert decode_grammar({"grammar": ARITHMETIC_GRAMMAR}, 48) == ARITHMETIC_GRAMMAR
    assert decode_grammar({"choices": ["yes", "no"]}, 4) == 'root ::= "yes" | "no"\n'
