"""Cancellation, deadlines and engine failures, modelled on Ray Serve's and vLLM's tests.

A blocking fake pins a request in flight (Ray's SignalActor); the query is then
cancelled, times out or fails, and we assert: the caller gets the right error,
siblings are unaffected and complete, ``engine.abort`` got that query id, and nothing
leaks (no asyncio task, no queued request, no value, no per-query engine state).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from runtime_graphs import Builder, answer_graph, assert_clean, chain_graph, fakes, settle

from primflow.engines.base import EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph, PortType
from primflow.runtime import QueryCancelled, QueryFailed, QueryTimeout, Runtime
from primflow.testing.clock import run_virtual
from primflow.testing.fake_engine import FakeEngine
from primflow.testing.fakes import FakeEmbedder


def two_step_graph() -> Graph:
    """texts -> embed -> web search -> output: cancellation must stop the second step."""
    b = Builder()
    vectors = b.embed("embed", b.input("texts", PortType.TEXTS))
    b.output("hits", b.web("web", b.input("queries", PortType.TEXTS)))
    b.graph.order(vectors[0], "web")
    return b.graph


INPUTS = {"texts": ["a"], "queries": ["q"]}


async def test_cancel_a_running_query_leaves_its_sibling_running_to_completion() -> None:
    engines = fakes()
    embedder = engines["embedder"]
    embedder.block("embed", query_id="q1")
    sibling_gate = embedder.block("embed", query_id="q2")
    tasks_before = asyncio.all_tasks()
    async with Runtime(engines) as runtime:
        first = asyncio.create_task(runtime.run(two_step_graph(), INPUTS, query_id="q1"))
        second = asyncio.create_task(runtime.run(two_step_graph(), INPUTS, query_id="q2"))
        await embedder.entered("embed", "q1").wait()
        await embedder.entered("embed", "q2").wait()
        assert runtime.cancel("q1")
        with pytest.raises(QueryCancelled, match="'q1' was cancelled"):
            await first
        sibling_gate.set()
        result = await second
        await settle()
        assert result.outputs["hits"]
        assert embedder.aborted == ["q1"]
        assert engines["web"].aborted == []  # q1 never reached the web engine
        assert engines["web"].batch_keys == [[("q2", "web")]]  # its child never ran
        assert sorted(embedder.released) == ["q2"]
        assert_clean(runtime, engines)
        assert not runtime.cancel("q1")  # already gone
    assert asyncio.all_tasks() == tasks_before


async def test_cancelling_the_callers_task_cancels_the_query() -> None:
    engines = fakes()
    engines["embedder"].block("embed")
    tasks_before = asyncio.all_tasks()
    async with Runtime(engines) as runtime:
        task = asyncio.create_task(runtime.run(chain_graph(), {"texts": ["a"]}, query_id="q1"))
        await engines["embedder"].entered("embed").wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert engines["embedder"].aborted == ["q1"]
        assert engines["embedder"].released == []
        assert_clean(runtime, engines)
    assert asyncio.all_tasks() == tasks_before


def test_deadline_expiry_aborts_the_running_primitive() -> None:
    async def main() -> tuple[QueryTimeout, float, list[str]]:
        engines = fakes()
        engines["embedder"].block("embed", query_id="late")
        async with Runtime(engines) as runtime:
            sibling = runtime.submit(chain_graph(), {"texts": ["b"]}, deadline_s=5.0)
            with pytest.raises(QueryTimeout) as info:
                await runtime.run(chain_graph(), {"texts": ["a"]}, query_id="late", deadline_s=0.5)
            expired_at_s = asyncio.get_running_loop().time()
            assert (await sibling).outputs["vectors"].shape == (1, 32)
            await settle()
            assert_clean(runtime, engines)
        return info.value, expired_at_s, engines["embedder"].aborted

    error, expired_at_s, aborted = run_virtual(main())
    assert expired_at_s == pytest.approx(0.5)
    assert error.query_id == "late" and error.pending_nodes == ["embed", "vectors"]
    assert "missed its deadline of 0.5 s; unfinished: embed, vectors" in str(error)
    assert aborted == ["late"]


def _one_at_a_time() -> dict[str, FakeEngine]:
    engines = fakes()
    engines["embedder"] = FakeEmbedder(
        "embedder", LatencyProfile(max_batch_size=1), latency_scale=0.0
    )
    return engines


async def test_cancel_drops_a_queued_request_from_the_engine_scheduler() -> None:
    engines = _one_at_a_time()
    gate = engines["embedder"].block("embed", query_id="running")
    async with Runtime(engines, max_wait_ms=0.0) as runtime:
        running = runtime.submit(chain_graph(), {"texts": ["a"]}, query_id="running")
        queued = runtime.submit(chain_graph(), {"texts": ["b"]}, query_id="queued")
        await engines["embedder"].entered("embed", "running").wait()
        scheduler = runtime.workers["embedder"].scheduler
        assert [r.query_id for r in scheduler.queued()] == ["queued"]
        runtime.cancel("queued")
        assert scheduler.num_queued == 0
        with pytest.raises(QueryCancelled):
            await queued
        gate.set()
        await running
        await settle()
        assert engines["embedder"].batch_keys == [[("running", "embed")]]
        assert engines["embedder"].aborted == ["queued"]
        assert_clean(runtime, engines)


def test_deadline_expiry_while_queued_drops_the_request() -> None:
    async def main() -> tuple[list[list[tuple[str, str]]], list[str]]:
        engines = _one_at_a_time()
        gate = engines["embedder"].block("embed", query_id="running")
        async with Runtime(engines, max_wait_ms=0.0) as runtime:
            running = runtime.submit(chain_graph(), {"texts": ["a"]}, query_id="running")
            with pytest.raises(QueryTimeout):
                await runtime.run(chain_graph(), {"texts": ["b"]}, query_id="q", deadline_s=1.0)
            gate.set()
            await running
            await settle()
            assert_clean(runtime, engines)
        return engines["embedder"].batch_keys, engines["embedder"].aborted

    batches, aborted = run_virtual(main())
    assert batches == [[("running", "embed")]]
    assert aborted == ["q"]


async def test_cancel_with_a_pre_scheduled_llm_phase_aborts_both_phases() -> None:
    engines = fakes()
    llm = engines["llm"]
    llm.block("prefill")
    tasks_before = asyncio.all_tasks()
    async with Runtime(engines) as runtime:
        query = runtime.submit(answer_graph(), {"question": "?"}, query_id="q1")
        await llm.entered("prefill").wait()
        await settle()
        assert [key for batch in llm.batch_keys for key in batch] == [
            ("q1", "prefill"),
            ("q1", "decode"),
        ]
        runtime.cancel("q1")
        with pytest.raises(QueryCancelled):
            await query
        await settle()
        assert llm.aborted == ["q1"]
        assert all(r.future is not None and r.future.cancelled() for b in llm.batches for r in b)
        assert_clean(runtime, engines)
    assert asyncio.all_tasks() == tasks_before


async def test_engine_failure_fails_only_the_query_it_was_running() -> None:
    engines = fakes()
    engines["embedder"].fail_on("embed", "out of memory", query_id="q0")
    async with Runtime(engines) as runtime:
        results = await runtime.run_many(
            [(two_step_graph(), INPUTS), (two_step_graph(), INPUTS)], deadline_s=10.0
        )
        await settle()
        failed, ok = results
        assert isinstance(failed, QueryFailed)
        assert (failed.engine, failed.node) == ("embedder", "embed")
        assert "engine 'embedder' failed primitive 'embed'" in str(failed)
        assert "out of memory" in str(failed)
        assert not isinstance(ok, BaseException) and ok.outputs["hits"]
        assert engines["embedder"].aborted == ["q0"]
        assert engines["web"].batch_keys == [[("q1", "web")]]
        assert_clean(runtime, engines)


class _BrokenEmbedder(FakeEmbedder):
    """Raises from ``submit`` on its first batch, then fails one future with a raw error."""

    def __init__(self) -> None:
        super().__init__("embedder", latency_scale=0.0)
        self.num_submits = 0

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        self.num_submits += 1
        if self.num_submits == 1:
            raise RuntimeError("device lost")
        futures = super().submit(batch)
        if self.num_submits == 2:
            futures[0].cancel()
            raw: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
            raw.set_exception(ZeroDivisionError("bad kernel"))
            futures[0] = raw
        return futures


async def test_any_engine_exception_becomes_a_query_failure_naming_engine_and_node() -> None:
    engines = fakes()
    engines["embedder"] = _BrokenEmbedder()
    async with Runtime(engines) as runtime:
        with pytest.raises(
            QueryFailed, match=r"engine 'embedder' failed primitive 'embed'.*device"
        ):
            await runtime.run(chain_graph(), {"texts": ["a"]})
        with pytest.raises(QueryFailed, match="ZeroDivisionError: bad kernel"):
            await runtime.run(chain_graph(), {"texts": ["a"]})
        result = await runtime.run(chain_graph(), {"texts": ["a"]})  # still serving
        assert result.outputs["vectors"].shape == (1, 32)
        await settle()
        assert_clean(runtime, engines)


async def test_closing_the_runtime_cancels_running_queries() -> None:
    engines = fakes()
    engines["embedder"].block("embed")
    tasks_before = asyncio.all_tasks()
    async with Runtime(engines) as runtime:
        query = runtime.submit(chain_graph(), {"texts": ["a"]})
        await engines["embedder"].entered("embed").wait()
    with pytest.raises(QueryCancelled, match="the runtime closed"):
        await query
    await settle()
    assert asyncio.all_tasks() == tasks_before
