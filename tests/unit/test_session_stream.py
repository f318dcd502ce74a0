"""Session.stream on the fakes: the events and their order, ask's callbacks built on the
same stream, and leaving the stream early cancelling the query on the engines."""

from __future__ import annotations

import asyncio
import contextlib
import doctest
from collections.abc import AsyncIterator

import pytest

from primflow import AnswerEvent, NodeDoneEvent, QueryTimeout, Session, TokenEvent
from primflow.apps import UnknownAppError
from primflow.graph.ir import INLINE_OPS
from primflow.session import EngineStack, StreamEvent, answer_decode_nodes, fake_factory
from primflow.testing.fake_engine import FakeEngine

DOCS = ["Employees get 25 days of paid leave.", "The office opens at 9."]
QUESTION = "How much leave?"


@contextlib.asynccontextmanager
async def fake_session(latency_scale: float = 0.0) -> AsyncIterator[Session]:
    stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=latency_scale))
    async with stack, Session(stack) as session:
        yield session


def fake(session: Session, name: str) -> FakeEngine:
    engine = session.stack.engines[name]
    assert isinstance(engine, FakeEngine)
    return engine


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


@pytest.mark.parametrize("scheme", ["primflow", "sequential", "parallel"])
async def test_the_stream_yields_progress_and_tokens_then_the_answer_last(scheme: str) -> None:
    async with fake_session() as session:
        events = await collect(session.stream("naive_rag", QUESTION, DOCS, scheme=scheme))
    *running, last = events
    assert isinstance(last, AnswerEvent) and last.answer.scheme == scheme
    answer = last.answer
    tokens = [e for e in running if isinstance(e, TokenEvent)]
    done = [e for e in running if isinstance(e, NodeDoneEvent)]
    assert len(tokens) + len(done) == len(running)
    assert tokens and "".join(t.text for t in tokens).strip() == answer.text
    [decode] = answer_decode_nodes(answer.graph)
    assert {t.node for t in tokens} == {decode}
    engine_nodes = {n.name for n in answer.graph if n.op not in INLINE_OPS}
    assert {e.node.name for e in done} == engine_nodes
    assert [e.num_done for e in done] == list(range(1, len(engine_nodes) + 1))
    assert {e.num_total for e in done} == {len(engine_nodes)}
    assert {e.query_id for e in running} == {answer.query_id}
    # The decode's tokens come before it is reported done.
    decode_done = next(
        i for i, e in enumerate(running) if isinstance(e, NodeDoneEvent) and e.node.name == decode
    )
    assert all(i < decode_done for i, e in enumerate(running) if isinstance(e, TokenEvent))


async def test_ask_callbacks_see_what_the_stream_yields() -> None:
    async with fake_session() as session:
        events = await collect(session.stream("naive_rag", QUESTION, DOCS))
        texts: list[str] = []
        progress: list[tuple[str, int, int]] = []
        answer = await session.ask(
            "naive_rag",
            QUESTION,
            DOCS,
            on_text=texts.append,
            on_progress=lambda node, num_done, total: progress.append((node.name, num_done, total)),
        )
    assert texts == [e.text for e in events if isinstance(e, TokenEvent)]
    assert progress == [
        (e.node.name, e.num_done, e.num_total) for e in events if isinstance(e, NodeDoneEvent)
    ]
    assert isinstance(events[-1], AnswerEvent) and answer.text == events[-1].answer.text


async def test_bad_arguments_raise_when_the_stream_is_made() -> None:
    async with fake_session() as session:
        with pytest.raises(ValueError, match="unknown scheme 'fastest'"):
            session.stream("naive_rag", QUESTION, DOCS, scheme="fastest")
        with pytest.raises(ValueError, match="the sequential scheme takes no deadline"):
            session.stream("naive_rag", QUESTION, DOCS, scheme="sequential", deadline_s=1.0)
        with pytest.raises(UnknownAppError, match="unknown app 'no_such_app'"):
            session.stream("no_such_app", QUESTION, DOCS)


async def test_aclose_cancels_the_query_and_aborts_its_engine_work() -> None:
    async with fake_session() as session:
        vector = fake(session, "vector_index")
        gate = vector.block("search")  # never set: the query cannot end by itself
        events = session.stream("naive_rag", QUESTION, DOCS)
        first = await anext(events)
        assert isinstance(first, NodeDoneEvent)
        await vector.entered("search").wait()
        assert session.runtime.num_running_queries == 1
        await events.aclose()
        assert session.runtime.num_running_queries == 0
        assert first.query_id in vector.aborted and first.query_id in fake(session, "llm").aborted
        assert vector.released == [] and not gate.is_set()
        assert vector.num_queries_with_state == 0


async def test_breaking_out_of_async_for_cancels_the_query() -> None:
    async with fake_session() as session:
        vector = fake(session, "vector_index")
        vector.block("search")  # never set
        query_ids = []
        async for event in session.stream("naive_rag", QUESTION, DOCS):
            query_ids.append(event.query_id)
            await vector.entered("search").wait()
            break
        # The abandoned stream is closed by the loop's async-generator finalizer, a
        # few loop turns later; the query cannot finish on its own meanwhile.
        for _ in range(1000):
            if session.runtime.num_running_queries == 0:
                break
            await asyncio.sleep(0)
        assert session.runtime.num_running_queries == 0
        assert query_ids[0] in vector.aborted


async def test_cancelling_ask_cancels_the_query() -> None:
    async with fake_session() as session:
        vector = fake(session, "vector_index")
        vector.block("search")
        task = asyncio.create_task(session.ask("naive_rag", QUESTION, DOCS, query_id="mine"))
        await vector.entered("search").wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert session.runtime.num_running_queries == 0
        assert "mine" in vector.aborted


async def test_a_failed_query_raises_from_the_stream_after_its_events() -> None:
    async with fake_session() as session:
        fake(session, "vector_index").block("search")
        seen: list[StreamEvent] = []
        with pytest.raises(QueryTimeout):
            async for event in session.stream("naive_rag", QUESTION, DOCS, deadline_s=0.5):
                seen.append(event)
    assert seen and not any(isinstance(e, AnswerEvent) for e in seen)


def test_the_stream_methods_example_runs() -> None:
    finder = doctest.DocTestFinder(recurse=False)
    [test] = finder.find(Session.stream, "Session.stream", globs={})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
