"""The graph scheduler through the Runtime, on fake engines: state transitions, dispatch
on readiness, value release, condition skipping, pre-scheduling, fusion, hooks."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from runtime_graphs import Builder, answer_graph, chain_graph, fakes

from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Graph, PortType
from primflow.runtime import NodeStatus, RecordingHook, Runtime
from primflow.testing.clock import run_virtual
from primflow.testing.fake_llm import FakeLLMState
from primflow.testing.fakes import fake_embedding


async def test_node_states_move_pending_ready_running_done() -> None:
    engines = fakes()
    gate = engines["embedder"].block("embed")
    async with Runtime(engines) as runtime:
        task = asyncio.create_task(runtime.run(chain_graph(), {"texts": ["a"]}, query_id="q"))
        await engines["embedder"].entered("embed").wait()
        state = runtime.state_of("q")
        assert state is not None
        assert state.status == {
            "texts": NodeStatus.DONE,
            "embed": NodeStatus.RUNNING,
            "vectors": NodeStatus.PENDING,
        }
        gate.set()
        result = await task
    assert set(result.outputs) == {"vectors"}
    np.testing.assert_array_equal(result.outputs["vectors"], fake_embedding("a")[None, :])
    timing = result.timings["embed"]
    assert timing.engine == "embedder" and timing.batch_size == 1
    assert timing.ready_s <= timing.start_s <= timing.end_s  # type: ignore[operator]


def test_a_node_dispatches_as_soon_as_its_own_inputs_are_ready() -> None:
    """A fast branch is not held back by a slow sibling (no supersteps)."""
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    b.output("fast_out", b.embed("fast_child", b.embed("fast", texts)))
    b.output("slow_out", b.web("slow", texts))
    profiles = {
        "embedder": LatencyProfile(base_s=0.01),
        "web": LatencyProfile(base_s=1.0),
    }

    async def main() -> dict[str, tuple[float, float | None]]:
        engines = fakes(latency_scale=1.0, profiles=profiles)
        async with Runtime(engines, max_wait_ms=0.0) as runtime:
            result = await runtime.run(b.graph, {"texts": ["x"]})
        return {n: (t.ready_s, t.end_s) for n, t in result.timings.items()}

    times = run_virtual(main())
    assert times["fast"][1] == pytest.approx(0.01)
    assert times["fast_child"][0] == times["fast"][1]  # ready the moment its parent ended
    assert times["fast_child"][1] == pytest.approx(0.02)
    assert times["slow"][1] == pytest.approx(1.0)


async def test_a_value_is_released_after_its_last_consumer_reads_it() -> None:
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    shared = b.embed("shared", texts)
    b.output("first", shared)
    b.output("late", b.aggregate("join", [shared, b.embed("blocked", texts)], "all"))
    engines = fakes()
    gate = engines["embedder"].block("blocked")
    async with Runtime(engines) as runtime:
        task = asyncio.create_task(runtime.run(b.graph, {"texts": ["a"]}, query_id="q"))
        await engines["embedder"].entered("blocked").wait()
        await asyncio.sleep(0)
        state = runtime.state_of("q")
        assert state is not None and state.status["first"] is NodeStatus.DONE
        assert state.has_value("shared", ops.VECTORS)  # "join" has not read it yet
        assert not state.has_value("texts", ops.VALUE)  # both embeds read it
        gate.set()
        result = await task
        assert state.num_values == 0
    np.testing.assert_array_equal(result.outputs["late"], result.outputs["first"])


def _branching_graph() -> Builder:
    """decision ? embed(if_true) : web(if_false); joined by AGGREGATE first."""
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    b.condition("route", b.input("decision"), texts)
    yes = b.embed("on_yes", ("route", ops.IF_TRUE))
    no = b.web("on_no", ("route", ops.IF_FALSE))
    b.output("yes", yes, is_optional=True)
    b.output("no", no, is_optional=True)
    b.output("joined", b.aggregate("join", [yes, no], "first"))
    state = b.prefill("prefill", "{hits}|{q}", {"hits": no, "q": b.input("q")}, optional=("hits",))
    b.output("answer", b.decode("decode", state))
    return b


@pytest.mark.parametrize("decision", ["Yes.", "no"])
async def test_condition_skips_the_untaken_branch(decision: str) -> None:
    engines = fakes()
    async with Runtime(engines) as runtime:
        result = await runtime.run(
            _branching_graph().graph, {"texts": ["t"], "decision": decision, "q": "?"}
        )
    is_yes = decision.lower().startswith("yes")
    taken = "on_yes" if is_yes else "on_no"
    sent = engines["embedder"].batch_keys + engines["web"].batch_keys
    assert sent == [[("q0", taken)]]
    outputs = result.outputs
    if is_yes:
        assert outputs["no"] is None
        np.testing.assert_array_equal(outputs["joined"], outputs["yes"])
    else:
        assert outputs["yes"] is None and outputs["joined"] == outputs["no"]
    # The optional prompt input got None from the skipped branch, hits when taken.
    [prefill] = [r for batch in engines["llm"].batches for r in batch if r.node == "prefill"]
    assert (prefill.inputs["hits"] is None) is is_yes


async def test_a_required_input_on_a_skipped_branch_skips_the_node() -> None:
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    b.condition("route", b.input("decision"), texts)
    b.output("out", b.embed("needs_branch", ("route", ops.IF_TRUE)), is_optional=True)
    hook = RecordingHook()
    engines = fakes()
    async with Runtime(engines, hooks=[hook]) as runtime:
        result = await runtime.run(b.graph, {"texts": ["t"], "decision": "no"})
    assert result.outputs == {"out": None}
    assert ("node_done", "q0", "needs_branch", NodeStatus.SKIPPED) in hook.events
    assert engines["embedder"].batches == []


async def test_chained_llm_phase_is_handed_over_before_its_predecessor_finishes() -> None:
    engines = fakes()
    gate = engines["llm"].block("prefill")
    async with Runtime(engines) as runtime:
        task = asyncio.create_task(runtime.run(answer_graph(), {"question": "why?"}))
        await engines["llm"].entered("prefill").wait()
        for _ in range(3):
            await asyncio.sleep(0)
        sent = [r for batch in engines["llm"].batches for r in batch]
        assert [r.node for r in sent] == ["prefill", "decode"]
        assert ops.STATE not in sent[1].inputs  # linked by llm_request_id instead
        assert sent[0].llm_request_id == sent[1].llm_request_id == "q0/answer"
        assert not task.done()  # the decode waits inside the engine for its prefill
        gate.set()
        result = await task
    timings = result.timings
    assert timings["decode"].ready_s == timings["prefill"].start_s
    assert result.outputs["answer"].startswith("Answer ")


async def test_partial_decodes_chain_and_each_item_flows_on() -> None:
    b = Builder()
    state = b.prefill("prefill", "List: {q}", {"q": b.input("q")})
    first = b.partial_decode("item_0", state, 0, 3)
    second = b.partial_decode("item_1", (first, ops.STATE), 1, 3)
    third = b.partial_decode("item_2", (second, ops.STATE), 2, 3)
    items = [(n, ops.ITEMS) for n in (first, second, third)]
    b.output("items", b.aggregate("join", items, "concat"))
    engines = fakes()
    async with Runtime(engines) as runtime:
        result = await runtime.run(b.graph, {"q": "fruit"})
    assert len(result.outputs["items"]) == 3
    assert result.outputs["items"][2].startswith("item 3 of")
    # Each phase was dispatched no later than its predecessor finished.
    t = result.timings
    for prev, nxt in [("item_0", "item_1"), ("item_1", "item_2")]:
        assert t[nxt].ready_s == t[prev].start_s


async def test_requests_of_several_queries_fuse_into_one_engine_call() -> None:
    engines = fakes()
    async with Runtime(engines) as runtime:
        results = await runtime.run_many([(chain_graph(), {"texts": [f"t{i}"]}) for i in range(4)])
    assert engines["embedder"].batch_keys == [[(f"q{i}", "embed") for i in range(4)]]
    assert all(r.timings["embed"].batch_size == 4 for r in results)  # type: ignore[union-attr]


def test_lone_query_is_not_held_by_max_wait_but_concurrent_ones_are_fused() -> None:
    async def main(max_wait_ms: float, with_second: bool) -> list[list[tuple[str, str]]]:
        profiles = {"embedder": LatencyProfile(base_s=0.01), "web": LatencyProfile(base_s=1.0)}
        engines = fakes(latency_scale=1.0, profiles=profiles)
        async with Runtime(engines, max_wait_ms=max_wait_ms) as runtime:
            blocker = runtime.submit(_web_graph(), {"texts": ["slow"]})  # keeps work in flight
            first = runtime.submit(chain_graph(), {"texts": ["a"]})
            if with_second:
                await asyncio.sleep(0.001)
                await runtime.run(chain_graph(), {"texts": ["b"]})
            await first
            await blocker
        return engines["embedder"].batch_keys

    assert run_virtual(main(2.0, with_second=True)) == [[("q1", "embed"), ("q2", "embed")]]
    assert run_virtual(main(0.0, with_second=True)) == [[("q1", "embed")], [("q2", "embed")]]

    async def lone() -> float:
        async with Runtime(fakes(), max_wait_ms=50.0) as runtime:
            result = await runtime.run(chain_graph(), {"texts": ["a"]})
        return result.timings["embed"].queue_wait_s

    assert run_virtual(lone()) == 0.0


def _web_graph() -> Graph:
    b = Builder()
    b.output("hits", b.web("web", b.input("texts", PortType.TEXTS)))
    return b.graph


async def test_critical_path_priority_is_the_upward_rank() -> None:
    engines = fakes()
    profiles = {"embedder": LatencyProfile(base_s=0.5), "web": LatencyProfile(base_s=2.0)}
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    b.output("out", b.web("after", b.embed("first", texts)))
    async with Runtime(engines, policy="critical_path", profiles=profiles) as runtime:
        await runtime.run(b.graph, {"texts": ["a"]})
    [[first]] = engines["embedder"].batches
    [[after]] = engines["web"].batches
    assert after.priority == pytest.approx(2.0)
    assert first.priority == pytest.approx(2.5)
    assert (first.depth, after.depth) == (2, 1)
    # Both carry the query's start, which critical_path orders queries by.
    assert first.query_start_s == after.query_start_s <= first.arrival_s


async def test_hooks_see_every_event_in_order() -> None:
    hook = RecordingHook()
    async with Runtime(fakes(), hooks=[hook]) as runtime:
        await runtime.run(chain_graph(), {"texts": ["a"]}, query_id="q")
    kinds = [e[0] for e in hook.events]
    assert kinds[0] == "query_start" and kinds[-1] == "query_done"
    assert [e[1:3] for e in hook.of_kind("batch")] == [("embedder", (("q", "embed"),))]
    ready = [e[2] for e in hook.of_kind("node_ready")]
    assert ready == ["texts", "embed", "vectors"]


async def test_bad_queries_get_clear_errors_and_the_runtime_keeps_serving() -> None:
    b = Builder()
    b.output("out", b.embed("embed", b.input("texts", PortType.TEXTS)))
    bad_engine = b.graph.copy()
    node = bad_engine.node("embed")
    bad_engine.replace_node(node.replace(engine="gpu_embedder"))
    async with Runtime(fakes()) as runtime:
        with pytest.raises(ValueError, match="node 'embed' runs on engine 'gpu_embedder'"):
            await runtime.run(bad_engine, {"texts": ["a"]})
        with pytest.raises(ValueError, match="query inputs lack 'texts'"):
            await runtime.run(b.graph, {"text": ["a"]})
        with pytest.raises(ValueError, match="cannot run on engine 'llm'"):
            wrong_kind = b.graph.copy()
            wrong_kind.replace_node(node.replace(engine="llm"))
            await runtime.run(wrong_kind, {"texts": ["a"]})
        result = await runtime.run(b.graph, {"texts": ["a"]})
    assert result.outputs["out"].shape == (1, 32)


async def test_engine_values_have_the_right_types() -> None:
    b = Builder()
    q = b.input("q")
    state = b.prefill("prefill", "{q}", {"q": q})
    b.output("state", state)
    async with Runtime(fakes()) as runtime:
        result = await runtime.run(b.graph, {"q": "hello"})
    assert isinstance(result.outputs["state"], FakeLLMState)
    assert result.outputs["state"].prompt == "hello"


async def test_a_graph_changed_after_a_run_is_analysed_afresh() -> None:
    graph = chain_graph()
    async with Runtime(fakes()) as runtime:
        await runtime.run(graph, {"texts": ["a"]})
        await runtime.run(graph, {"texts": ["a"]})  # the cached plan
        graph.replace_node(graph.node("embed").replace(engine="elsewhere"))
        with pytest.raises(ValueError, match="runs on engine 'elsewhere'"):
            await runtime.run(graph, {"texts": ["a"]})


async def test_a_graph_and_its_copies_share_one_plan() -> None:
    graph = chain_graph()
    async with Runtime(fakes()) as runtime:
        await runtime.run(graph, {"texts": ["a"]})
        await runtime.run(graph, {"texts": ["b"]})
        await runtime.run(graph.copy(), {"texts": ["c"]})  # what GraphCache hits return
        assert runtime.num_plans_built == 1
        changed = graph.copy()
        changed.replace_node(changed.node("embed").replace(params={"note": "new"}))
        result = await runtime.run(changed, {"texts": ["d"]})
        assert runtime.num_plans_built == 2
    assert result.outputs["vectors"].shape[0] == 1


async def test_on_text_streams_a_decode_to_its_callback() -> None:
    pieces: list[str] = []
    async with Runtime(fakes()) as runtime:
        result = await runtime.run(
            answer_graph(), {"question": "?"}, on_text={"decode": pieces.append}
        )
        with pytest.raises(ValueError, match="on_text names node 'nope'"):
            runtime.submit(answer_graph(), {"question": "?"}, on_text={"nope": print})
    assert len(pieces) > 1
    assert "".join(pieces).strip() == result.outputs["answer"]
