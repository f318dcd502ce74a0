"""A user's own engine and component (primflow.testing.examples, shown in
docs/guide/extending.md): the hashing embedder serves naive_rag's ``embedder`` and
retrieves the passage sharing the question's words; the HyDE component lowers to lint-
clean primitives the passes optimize across, and retrieval follows what the LLM wrote."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from primflow import (
    App,
    Document,
    EngineError,
    EngineKind,
    EngineRequest,
    EngineStack,
    LatencyProfile,
    Op,
    Session,
    build_template,
    lower,
    optimize,
)
from primflow.engines.base import Engine
from primflow.engines.placement import CoreBudget
from primflow.graph.ir import EdgeKind
from primflow.graph.lint import check_same_dependencies, lint
from primflow.session import fake_factory
from primflow.session.stack import engines_for_apps
from primflow.testing.examples.hashing_embedder import HASHING_PROFILE, HashingEmbedder
from primflow.testing.examples.hyde import HYDE_RAG, HypotheticalPassages
from primflow.testing.fakes import FakeLLM

DOCUMENTS = [
    Document("Full-time employees get 25 days of paid annual leave per year.", "leave.txt"),
    Document("The office cafeteria serves lunch from noon, with a vegetarian dish.", "food.txt"),
    Document("Expense reports are filed within 30 days, receipts attached.", "expenses.txt"),
    Document("Use the VPN on public networks; passwords rotate every 90 days.", "it.txt"),
]


def user_factory(
    name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
) -> Engine:
    if name == "embedder":
        return HashingEmbedder(name, budget=budget)
    return fake_factory(latency_scale=0.001)(name, kind, budget, profile)


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    stack = EngineStack.for_apps(["naive_rag", HYDE_RAG], user_factory)
    async with stack, Session(stack) as opened:
        yield opened


def _embed_request(items: object, node: str = "embed") -> EngineRequest:
    return EngineRequest("q0", node, Op.EMBED, {"items": items}, {})


async def test_hashing_embedder_gives_unit_rows_that_match_shared_words() -> None:
    engine = HashingEmbedder()
    texts = [d.text for d in DOCUMENTS] + ["paid leave days", "of the"]
    (future,) = engine.submit([_embed_request(texts)])
    vectors = (await future)["vectors"]
    assert vectors.shape == (len(texts), 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:-1], axis=1), 1.0)
    assert not vectors[-1].any()  # stop words only: a zero row
    scores = vectors[:4] @ vectors[4]
    assert int(np.argmax(scores)) == 0
    await engine.close()


async def test_hashing_embedder_fails_a_bad_request_alone() -> None:
    engine = HashingEmbedder()
    good, bad = engine.submit([_embed_request(["a text"]), _embed_request([3], "bad")])
    assert (await good)["vectors"].shape == (1, 256)
    with pytest.raises(EngineError, match="'bad'"):
        await bad
    await engine.close()


async def test_naive_rag_runs_on_the_users_embedder(session: Session) -> None:
    assert isinstance(session.stack.engines["embedder"], HashingEmbedder)
    assert session.stack.profiles["embedder"] == HASHING_PROFILE
    question = "How many days of paid annual leave do full-time employees get?"
    answer = await session.ask("naive_rag", question, DOCUMENTS)
    assert answer.text
    assert answer.passages[0].chunk.source == "leave.txt"


def test_hyde_lowers_to_lint_clean_primitives_the_passes_optimize_across() -> None:
    query = HYDE_RAG.query("Where can I eat at work?", DOCUMENTS)
    graph = lower(HYDE_RAG.template(), query)
    lint(graph)
    # Lowering orders HyDE after indexing, as written; no data joins them.
    assert graph.parents("hyde.write.prefill") == ["input.question", "ingest"]
    optimized, report = optimize(graph, lint_each=True)
    lint(optimized)
    check_same_dependencies(graph, optimized)
    assert "prune_dependencies" in report.changed_by
    assert all(e.kind is EdgeKind.DATA for e in optimized.edges)
    assert optimized.parents("hyde.write.prefill") == ["input.question"]
    # Decode pipelining: each passage is embedded and searched as soon as it is written.
    assert optimized.parents("hyde.embed.p1") == ["hyde.write.decode.p1"]
    assert optimized.node("search.p0").op is Op.VECTOR_SEARCH


@pytest.mark.parametrize(
    ("passages", "expected"),
    [
        (["The cafeteria serves lunch at noon.", "A vegetarian lunch dish."], "food.txt"),
        (["File expense reports with receipts.", "Expenses within 30 days."], "expenses.txt"),
    ],
)
async def test_hyde_retrieves_what_the_hypothetical_passages_match(
    session: Session, passages: list[str], expected: str
) -> None:
    llm = session.stack.engines["llm"]
    assert isinstance(llm, FakeLLM)
    llm.set_items("hyde.write", passages)
    answer = await session.ask(HYDE_RAG, "Where can I eat at work?", DOCUMENTS)
    assert answer.text
    assert answer.passages[0].chunk.source == expected


def test_the_stack_builds_every_engine_a_component_names() -> None:
    hyde = HypotheticalPassages(vectors="vectors")
    app = App("hyde_only", lambda: build_template("hyde_only", hyde, outputs={"v": "vectors"}))
    assert engines_for_apps([app]) == {"llm": EngineKind.LLM, "embedder": EngineKind.EMBEDDER}


async def test_a_session_refuses_a_second_app_under_a_taken_name(session: Session) -> None:
    await session.ask(HYDE_RAG, "Where can I eat at work?", DOCUMENTS)
    other = App("hyde_rag", HYDE_RAG.build)
    with pytest.raises(ValueError, match="different app named 'hyde_rag'"):
        await session.ask(other, "Where can I eat at work?", DOCUMENTS)


async def test_user_engines_run_concurrently_with_the_fakes(session: Session) -> None:
    questions = ["How much paid annual leave?", "When are expense reports filed?"]
    answers = await asyncio.gather(*(session.ask("naive_rag", q, DOCUMENTS) for q in questions))
    assert [a.passages[0].chunk.source for a in answers] == ["leave.txt", "expenses.txt"]


async def test_a_users_app_cannot_shadow_a_built_in_name(session: Session) -> None:
    shadow = App("naive_rag", HYDE_RAG.build)
    await session.ask(shadow, "Where can I eat at work?", DOCUMENTS)
    with pytest.raises(ValueError, match="different app named 'naive_rag'"):
        await session.ask("naive_rag", "How much leave?", DOCUMENTS)
