"""Topology-aware batching end to end, in virtual time: the paper's Fig. 7 scenario."""

from __future__ import annotations

import pytest
from runtime_graphs import Builder, fakes

from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph, PortType
from primflow.runtime import Runtime
from primflow.testing.clock import run_virtual


def fig7_graph() -> Graph:
    """A -> C -> C2 (deep); B -> E <- D, where D is slow: batching B early is wasted."""
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    queries = b.input("queries", PortType.TEXTS)
    b.embed("A", texts)
    b.embed("B", texts)
    b.prefill("D", "{q}", {"q": b.input("q")})
    b.web("C", queries)
    b.web("C2", queries)
    b.web("E", queries)
    for src, dst in [("A", "C"), ("C", "C2"), ("B", "E"), ("D", "E")]:
        b.graph.order(src, dst)
    b.output("deep", ("C2", "hits"))
    b.output("wide", ("E", "hits"))
    return b.graph


PROFILES = {
    "embedder": LatencyProfile(base_s=0.4, max_batch_size=2),
    "web": LatencyProfile(base_s=0.01),
    "llm": LatencyProfile(base_s=1.0),
}


def next_node_trigger_times(policy: str) -> list[float]:
    """When each query's next node after A (that is, C) became ready."""

    async def main() -> list[float]:
        engines = fakes(latency_scale=1.0, profiles=PROFILES)
        inputs = {"texts": ["t"], "queries": ["x"], "q": "?"}
        async with Runtime(engines, policy=policy, max_wait_ms=0.0) as runtime:
            results = await runtime.run_many([(fig7_graph(), inputs)] * 2)
        return [r.timings["C"].ready_s for r in results]  # type: ignore[union-attr]

    return run_virtual(main())


def test_topology_batches_a_with_g_so_both_queries_advance() -> None:
    assert next_node_trigger_times("topology") == pytest.approx([0.4, 0.4])


def test_fifo_batches_a_with_b_and_delays_the_second_query() -> None:
    assert next_node_trigger_times("fifo") == pytest.approx([0.4, 0.8])


def test_critical_path_also_advances_both_queries() -> None:
    assert next_node_trigger_times("critical_path") == pytest.approx([0.4, 0.4])
