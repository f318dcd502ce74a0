"""Work only an untaken branch needs is never dispatched.

The answer below reads the web hits as a required input, so it runs only on the
search branch; split_prefill still cuts its prompt so that the question part (a partial
prefill) depends on nothing but the question. Without branch guards that partial
prefill would be sent to the LLM at once, speculatively; with them it waits for the
condition and is dropped (SKIPPED, never submitted) when the branch is not taken.
"""

from __future__ import annotations

import pytest

from primflow import Condition, Generate, Judge, Runtime, WebSearch, build_template, lower_query
from primflow.api.config import Query
from primflow.engines.base import EngineKind
from primflow.graph.ir import Graph, Op
from primflow.passes import optimize
from primflow.runtime.growth import branch_guards
from primflow.runtime.query_state import QueryResult
from primflow.testing.fakes import make_fake_engines

PARTIAL = "answer.prefill.partial"


def search_only_answer() -> tuple[Graph, dict[str, object]]:
    flow = (
        Judge(question="question", decision="decision")
        >> Condition(decision="decision", value="question_list", if_true="search_queries")
        >> WebSearch(queries="search_queries", hits="web_hits")
        >> Generate(
            "answer",
            prompt="Answer briefly.\nQuestion: {question}\nResults:\n{results}\nAnswer:",
            reads={"question": "question", "results": "web_hits"},
            text="answer",
        )
    )
    template = build_template("search_only", flow, outputs={"answer": "answer"})
    lowered = lower_query(template, Query("Who won the 1921 Nobel Prize in Physics?"))
    graph, _ = optimize(lowered.graph, lint_each=True)
    return graph, lowered.inputs


def ancestors(graph: Graph, name: str) -> set[str]:
    found: set[str] = set()
    stack = [name]
    while stack:
        for parent in graph.parents(stack.pop()):
            if parent not in found:
                found.add(parent)
                stack.append(parent)
    return found


def test_the_partial_prefill_is_speculative_and_guarded() -> None:
    graph, _ = search_only_answer()
    assert graph.node(PARTIAL).op is Op.LLM_PARTIAL_PREFILL
    assert "condition" not in ancestors(graph, PARTIAL)  # nothing else would hold it
    assert branch_guards(graph) == {PARTIAL: [("condition", "if_true")]}


async def run(decision: str) -> tuple[QueryResult, dict[str, list[str]]]:
    graph, inputs = search_only_answer()
    kinds = {"judge": EngineKind.LLM, "llm": EngineKind.LLM, "web_search": EngineKind.WEB_SEARCH}
    engines = make_fake_engines(kinds, latency_scale=0.0)
    engines["judge"].set_response("judge.decode", decision)
    async with Runtime(engines) as runtime:
        result = await runtime.run(graph, inputs)
        assert runtime.num_open_requests == 0  # nothing left queued anywhere
    sent = {name: [r.node for b in e.batches for r in b] for name, e in engines.items()}
    return result, sent


async def test_an_untaken_branch_dispatches_nothing() -> None:
    result, sent = await run("no")
    assert sent["llm"] == [] and sent["web_search"] == []
    assert result.timings[PARTIAL].start_s is None  # dropped, never started
    assert result.outputs["answer"] is None
    assert result.decisions == {"judge.decode": "no"}


async def test_a_taken_branch_runs_its_held_work() -> None:
    result, sent = await run("yes")
    assert sent["web_search"] == ["web_search"]
    assert PARTIAL in sent["llm"] and "answer.decode" in sent["llm"]
    assert result.outputs["answer"]


@pytest.mark.parametrize("decision", ["yes", "no"])
async def test_guards_leave_unguarded_work_alone(decision: str) -> None:
    _, sent = await run(decision)
    assert sent["judge"][-1] == "judge.decode"  # the judge itself is never held
