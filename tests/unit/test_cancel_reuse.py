"""Reusing a query id after its query ended, modelled on vLLM's test_abort.

Engines remember ended queries and refuse late work for them, so a reused id would be
refused if the runtime passed it through; instead each run reaches the engines under
an id of its own (``<id>~<n>`` on reuse). Here: a finished, a cancelled and a
timed-out query's id is reused; the new run succeeds, its LLM call does not see the
old call's state, and nothing of either run is left behind.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from runtime_graphs import Builder, answer_graph, assert_clean, chain_graph, fakes, settle

from primflow.engines.base import EngineError, EngineRequest
from primflow.graph.ir import PortType
from primflow.runtime import QueryCancelled, QueryTimeout, RecordingHook, Runtime
from primflow.runtime.clock import LoopClock
from primflow.runtime.graph_scheduler import QueryRun
from primflow.runtime.plan import GraphPlan
from primflow.testing.clock import run_virtual
from primflow.testing.fake_llm import FakeLLMState
from primflow.testing.fakes import FakeEmbedder


def _state_graph() -> Builder:
    """question -> prefill -> outputs the LLM state (the prompt so far)."""
    b = Builder()
    b.output("state", b.prefill("prefill", "Q: {question}", {"question": b.input("question")}))
    return b


async def test_a_finished_query_id_can_be_reused() -> None:
    engines = fakes()
    hook = RecordingHook()
    graph = _state_graph().graph
    async with Runtime(engines, hooks=[hook]) as runtime:
        first = await runtime.run(graph, {"question": "one"}, query_id="q")
        second = await runtime.run(graph, {"question": "two"}, query_id="q")
        await settle()
        assert_clean(runtime, engines)
    # The second call starts from an empty prompt: no state leaked from the first.
    assert isinstance(second.outputs["state"], FakeLLMState)
    assert (first.outputs["state"].prompt, second.outputs["state"].prompt) == ("Q: one", "Q: two")
    assert first.query_id == second.query_id == "q"
    engine_ids = [r.query_id for batch in engines["llm"].batches for r in batch]
    assert engine_ids[0] == "q" and engine_ids[1].startswith("q~")
    assert engines["llm"].released == engine_ids
    assert [e[1] for e in hook.of_kind("query_done")] == ["q", "q"]


async def test_a_cancelled_query_id_can_be_reused_at_once() -> None:
    engines = fakes()
    embedder = engines["embedder"]
    assert isinstance(embedder, FakeEmbedder)
    embedder.block("embed", query_id="q")
    async with Runtime(engines) as runtime:
        aborted = runtime.submit(chain_graph(), {"texts": ["a"]}, query_id="q")
        await embedder.entered("embed", "q").wait()
        assert runtime.cancel("q")
        with pytest.raises(QueryCancelled):
            await aborted
        # Reuse right away: the engine has aborted "q" and would refuse it.
        result = await runtime.run(chain_graph(), {"texts": ["b"]}, query_id="q")
        assert result.outputs["vectors"].shape == (1, 32)
        await settle()
        assert_clean(runtime, engines)
    [reused] = embedder.released
    assert embedder.aborted == ["q"] and reused.startswith("q~")


def test_a_timed_out_query_id_can_be_reused() -> None:
    async def main() -> tuple[list[str], list[str]]:
        engines = fakes()
        llm = engines["llm"]
        llm.block("prefill", query_id="q")
        async with Runtime(engines) as runtime:
            with pytest.raises(QueryTimeout):
                await runtime.run(answer_graph(), {"question": "?"}, query_id="q", deadline_s=1)
            result = await runtime.run(answer_graph(), {"question": "?"}, query_id="q")
            assert result.outputs["answer"].startswith("Answer")
            await settle()
            assert_clean(runtime, engines)
        return llm.aborted, llm.released

    aborted, released = run_virtual(main())
    assert aborted == ["q"] and len(released) == 1 and released[0].startswith("q~")


async def test_an_engine_refuses_work_for_an_ended_query_id() -> None:
    # Why the runtime renames reused ids: passed through, the work would be refused.
    engines = fakes()
    async with Runtime(engines) as runtime:
        await runtime.run(chain_graph(), {"texts": ["a"]}, query_id="q")
        [[request]] = engines["embedder"].batches
        [future] = engines["embedder"].submit([request])
        with pytest.raises(EngineError, match="query 'q' already ended"):
            await future


async def test_a_running_query_id_cannot_be_reused_and_fresh_ids_never_collide() -> None:
    engines = fakes()
    engines["embedder"].block("embed", query_id="q")
    b = Builder()
    b.output("vectors", b.embed("embed", b.input("texts", PortType.TEXTS)))
    async with Runtime(engines) as runtime:
        running = runtime.submit(b.graph, {"texts": ["a"]}, query_id="q")
        with pytest.raises(ValueError, match="query id 'q' is already running"):
            runtime.submit(b.graph, {"texts": ["a"]}, query_id="q")
        await engines["embedder"].entered("embed", "q").wait()
        runtime.cancel("q")
        with pytest.raises(QueryCancelled):
            await running
        # A caller's id that looks like a generated one still gets an unused engine id.
        await runtime.run(b.graph, {"texts": ["b"]}, query_id="q~0")
        await runtime.run(b.graph, {"texts": ["c"]}, query_id="q")
        await settle()
        assert_clean(runtime, engines)
    engine_ids = [r.query_id for batch in engines["embedder"].batches for r in batch]
    assert engine_ids == ["q", "q~0", "q~1"]  # "q~0" was taken, so the reuse skips it


async def test_a_stale_result_for_a_node_does_not_unhook_its_live_request() -> None:
    # A late result of an earlier run under the same id must not be taken for the
    # current run's request of that node (it once popped it, and the query hung).
    requests: list[EngineRequest] = []
    ended: list[QueryRun] = []
    graph = chain_graph()
    plan = GraphPlan(graph, lambda node: 0.0)
    run = QueryRun(
        "q",
        graph,
        plan,
        {"texts": ["a"]},
        clock=LoopClock(),
        submit=lambda engine, request: requests.append(request),
        on_end=ended.append,
    )
    run.start()
    [live] = requests
    stale = dataclasses.replace(live)
    run.on_result(stale, {"vectors": np.zeros((1, 4))}, None)
    assert run.pending_requests() == [live] and not ended
    run.on_result(live, {"vectors": np.ones((1, 4))}, None)
    assert ended == [run] and run.result is not None
    assert run.result.outputs["vectors"].sum() == 4
