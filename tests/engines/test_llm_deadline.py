"""A deadline through the runtime on the real SmolLM2 engine (llama.cpp).

A query whose deadline passes while its decode streams fails with ``QueryTimeout``;
afterwards the engine holds nothing for it (live requests, KV cells, cached prefixes
and the KV positions llama.cpp itself reports are back to what they were before it),
and the next query runs normally. The deadline fires when the test says so: the clock
holds the deadline timer until the decode has streamed its first text, so "expires
while its decode runs" is a fact of the test, not a race against the machine's speed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llm_calls import SYSTEM, wait_until

from primflow.engines.llm import LlamaEngine
from primflow.graph import ops
from primflow.graph.ir import Graph, Node, Op, Port, PortType
from primflow.runtime import QueryTimeout, Runtime
from primflow.runtime.clock import LoopClock, Timer

pytestmark = pytest.mark.engines

# Timers due this far ahead are deadlines the test fires by hand (batching waits are ms).
HELD_AFTER_S = 3600.0


class _HeldTimer:
    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.is_cancelled = False

    def cancel(self) -> None:
        self.is_cancelled = True


class HeldDeadlineClock(LoopClock):
    """The loop's clock, except that far timers (deadlines) wait for :meth:`expire`."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[_HeldTimer] = []

    def call_at(self, when_s: float, callback: Callable[[], object]) -> Timer:
        if when_s - self.now_s() < HELD_AFTER_S:
            return super().call_at(when_s, callback)
        timer = _HeldTimer(callback)
        self.held.append(timer)
        return timer

    def expire(self) -> None:
        """Fire every held deadline now, as if its time had come."""
        held, self.held = self.held, []
        for timer in held:
            if not timer.is_cancelled:
                timer.callback()


def answer_graph(max_tokens: int, ignore_eos: bool = False) -> Graph:
    graph = Graph()
    graph.add_node(
        Node(
            "question",
            Op.INPUT,
            outputs=(Port(ops.VALUE, PortType.TEXT),),
            params={"key": "question"},
        )
    )
    graph.add_node(
        Node(
            "prefill",
            Op.LLM_PREFILL,
            inputs=(Port("question", PortType.TEXT),),
            outputs=(Port(ops.STATE, PortType.LLM_STATE),),
            engine="llm",
            params={"request": "answer", "template": "{question}", "system": SYSTEM},
        )
    )
    graph.add_node(
        Node(
            "decode",
            Op.LLM_DECODE,
            inputs=(Port(ops.STATE, PortType.LLM_STATE),),
            outputs=(Port(ops.TEXT, PortType.TEXT),),
            engine="llm",
            params={"request": "answer", "max_tokens": max_tokens, "ignore_eos": ignore_eos},
        )
    )
    graph.add_node(
        Node("answer", Op.OUTPUT, inputs=(Port(ops.VALUE, PortType.ANY),), params={"key": "answer"})
    )
    graph.connect("question", ops.VALUE, "prefill", "question")
    graph.connect("prefill", ops.STATE, "decode", ops.STATE)
    graph.connect("decode", ops.TEXT, "answer", ops.VALUE)
    return graph


def held_state(engine: LlamaEngine) -> dict[str, int]:
    stats = engine.stats()
    return {
        "num_requests": stats["num_requests"],
        "num_used_cells": stats["num_used_cells"],
        "num_cached_prefixes": stats["num_cached_prefixes"],
        "num_running": engine.health().num_running,
    }


async def test_deadline_during_decode_frees_the_query_and_the_next_query_runs() -> None:
    engine = LlamaEngine("llm-deadline", n_ctx=2048, n_seq_max=8, n_threads=1)
    runtime = Runtime({"llm": engine})
    clock = HeldDeadlineClock()
    await runtime.start(clock)
    try:
        # A finished query first, so the engine holds a cached prefix that must survive.
        first = await runtime.run(
            answer_graph(12), {"question": "Name a primary colour."}, query_id="first"
        )
        assert first.outputs["answer"]
        await wait_until(lambda: engine.stats()["num_requests"] == 0)
        before = held_state(engine)
        positions_before = await engine.kv_positions()
        assert before["num_cached_prefixes"] >= 1

        streamed: list[str] = []
        late = runtime.submit(
            answer_graph(400, ignore_eos=True),
            {"question": "Write a long story about a dragon."},
            query_id="late",
            deadline_s=2 * HELD_AFTER_S,
            on_text={"decode": streamed.append},
        )
        await wait_until(lambda: bool(streamed))  # the decode is running now
        assert engine.health().num_running == 1 and not late.done()
        clock.expire()
        with pytest.raises(QueryTimeout) as raised:
            await late
        assert raised.value.pending_nodes == ["decode", "answer"]

        # The engine thread frees the query before its next step.
        await wait_until(lambda: held_state(engine) == before)
        assert await engine.kv_positions() == positions_before
        assert runtime.num_running_queries == 0 and runtime.num_open_requests == 0

        after = await runtime.run(
            answer_graph(20), {"question": "What is the capital of France?"}, query_id="after"
        )
        assert "Paris" in after.outputs["answer"]
    finally:
        await runtime.close()
