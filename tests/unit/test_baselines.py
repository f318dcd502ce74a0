"""Baselines and the session on fake engines: same answers and passages as primflow,
module-level execution order, streaming, co-location, and the critical path."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.baselines import ABLATIONS, module_dependencies, modules_in_order
from primflow.graph.ir import Graph, Node, Op
from primflow.runtime import NodeTiming
from primflow.session import EngineStack, Session, critical_path, fake_factory
from primflow.session.timing import service_times
from primflow.testing.fakes import FakeEngine, FakeLLM

SCHEMES = ("primflow", "sequential", "parallel")
# advanced_rag is left out until vector search returns top_k per query vector: the
# e-graph searches each expanded query alone, the p-graph searches all three at once.
SAME_PASSAGE_APPS = ("naive_rag", "contextual_retrieval", "search_augmented")


@pytest.fixture
async def session() -> AsyncIterator[Session]:
    stack = EngineStack.for_apps(APPS, fake_factory(latency_scale=0.001))
    judge = stack.engines["judge"]
    assert isinstance(judge, FakeLLM)
    judge.set_response("judge.decode", "yes")  # search_augmented takes its search branch
    async with stack, Session(stack) as opened:
        yield opened


def _sample(app_name: str) -> tuple[str, list, dict]:  # type: ignore[type-arg]
    app = APPS[app_name]
    query = app.sample_query()
    return query.question, list(query.documents), dict(app.sample_config_changes)


@pytest.mark.parametrize("app_name", SAME_PASSAGE_APPS)
async def test_schemes_retrieve_the_same_passages(session: Session, app_name: str) -> None:
    question, docs, changes = _sample(app_name)
    answers = {
        s: await session.ask(app_name, question, docs, scheme=s, config_changes=changes)
        for s in SCHEMES
    }
    keys = {s: [(h.chunk.source, h.chunk.chunk_id) for h in a.passages] for s, a in answers.items()}
    assert keys["primflow"], "every app here retrieves passages"
    assert keys["sequential"] == keys["parallel"] == keys["primflow"]
    assert all(a.text for a in answers.values())


async def test_sequential_runs_one_primitive_at_a_time(session: Session) -> None:
    question, docs, _changes = _sample("naive_rag")
    answer = await session.ask("naive_rag", question, docs, scheme="sequential")
    spans = sorted((p.start_s, p.end_s) for p in answer.timing.primitives)
    for (_, end_s), (next_start_s, _) in itertools.pairwise(spans):
        assert next_start_s >= end_s
    engines = session.stack.engines
    assert all(len(b) == 1 for e in engines.values() for b in _batches(e))
    # Sequential waits on everything before it: the bound is the sum of all services.
    assert answer.bound_s == pytest.approx(sum(p.service_s for p in answer.timing.primitives))


async def test_parallel_overlaps_independent_modules(session: Session) -> None:
    # advanced_rag: the question's search branch and the expansion branch are independent.
    question, docs, _changes = _sample("advanced_rag")
    answer = await session.ask("advanced_rag", question, docs, scheme="parallel")
    by_node = {p.node: p for p in answer.timing.primitives}
    question_branch = by_node["embed_question"]
    expansion = by_node["expand.decode"]
    assert question_branch.start_s < expansion.end_s


def test_module_dependencies_follow_data_not_order() -> None:
    app = APPS["advanced_rag"]
    graph = lower_query(app.template(), app.sample_query()).graph
    upstream = module_dependencies(graph)
    assert "expand" not in upstream["embed_question"]  # only an ORDER edge joins them
    assert "expand" in upstream["embed_queries"]
    modules = modules_in_order(graph)
    assert next(n.name for n in modules["synthesize"]).startswith("synthesize.")


async def test_streaming_reaches_the_caller_in_every_scheme(session: Session) -> None:
    question, docs, _changes = _sample("naive_rag")
    for scheme in SCHEMES:
        pieces: list[str] = []
        answer = await session.ask(
            "naive_rag", question, docs, scheme=scheme, on_text=pieces.append
        )
        assert "".join(pieces).strip() == answer.text


async def test_two_apps_share_the_engines_at_once(session: Session) -> None:
    question, docs, _ = _sample("naive_rag")
    naive, advanced, search = await asyncio.gather(
        session.ask("naive_rag", question, docs),
        session.ask("advanced_rag", "What does the paper report?", docs),
        session.ask("search_augmented", "Who won the 1921 Nobel Prize in Physics?"),
    )
    assert naive.text and advanced.text and search.text
    assert len({naive.query_id, advanced.query_id, search.query_id}) == 3
    assert session.runtime.num_running_queries == 0


async def test_optimized_graph_is_cached_per_shape(session: Session) -> None:
    question, docs, _ = _sample("naive_rag")
    first = await session.ask("naive_rag", question, docs)
    second = await session.ask("naive_rag", "Another question?", docs)
    assert not first.is_cache_hit and second.is_cache_hit


@pytest.mark.parametrize("name", ["no_passes", "policy_fifo", "pipelining_only"])
async def test_ablations_answer(name: str) -> None:
    stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.001))
    question, docs, _ = _sample("naive_rag")
    async with stack, Session(stack, ablation=name) as session:
        answer = await session.ask("naive_rag", question, docs)
    assert answer.text
    if not ABLATIONS[name].passes:
        assert len(answer.graph) == len(
            lower_query(APPS["naive_rag"].template(), APPS["naive_rag"].query(question, docs)).graph
        )


def test_critical_path_takes_the_heaviest_branch() -> None:
    graph = Graph(
        [
            Node("a", Op.EMBED, engine="e"),
            Node("b", Op.EMBED, engine="e"),
            Node("c", Op.EMBED, engine="e"),
            Node("d", Op.EMBED, engine="e"),
        ]
    )
    for src, dst in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):
        graph.order(src, dst)
    timings = {
        "a": NodeTiming(0.0, 0.0, 1.0),
        "b": NodeTiming(1.0, 1.0, 1.5),
        "c": NodeTiming(1.0, 1.2, 4.0),  # queued 0.2 s, served 2.8 s
        "d": NodeTiming(4.0, 4.0, 5.0),
    }
    path, bound_s = critical_path(graph, service_times(graph, timings))
    assert path == ["a", "c", "d"]
    assert bound_s == pytest.approx(1.0 + 2.8 + 1.0)


def test_early_dispatched_phase_is_not_counted_twice() -> None:
    graph = Graph(
        [Node("prefill", Op.LLM_PREFILL, engine="llm"), Node("decode", Op.LLM_DECODE, engine="llm")]
    )
    graph.order("prefill", "decode")
    timings = {"prefill": NodeTiming(0.0, 0.0, 2.0), "decode": NodeTiming(0.0, 0.0, 3.0)}
    assert service_times(graph, timings) == {"prefill": 2.0, "decode": 1.0}


def _batches(engine: object) -> list[list[object]]:
    return list(engine.batches) if isinstance(engine, FakeEngine) else []
