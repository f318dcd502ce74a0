"""Per-query state, the static plan (depth, rank, relaxed edges), inline ops, and the
engine worker's max-wait timer on a manual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
from runtime_graphs import Builder, answer_graph

from primflow.engines.base import EngineKind, EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile
from primflow.engines.scheduler import Batch, EngineScheduler
from primflow.graph import ops
from primflow.graph.ir import Graph, GraphError, Node, Op, PortType, Provenance, Stage
from primflow.runtime.clock import ManualClock
from primflow.runtime.inline_ops import is_decision_true, run_aggregate
from primflow.runtime.plan import GraphPlan
from primflow.runtime.query_state import MISSING, SKIPPED, NodeStatus, QueryState
from primflow.runtime.worker import EngineWorker
from primflow.testing.fake_engine import FakeEngine
from primflow.values import Chunk, Hit


def test_state_refcounts_release_a_value_after_its_last_reader() -> None:
    state = QueryState("q", ["a", "b"], {("a", "out"): 2})
    state.put("a", "out", "value")
    state.put("a", "unread", "dropped at once")
    assert state.num_values == 1
    assert state.take("a", "out") == "value"
    assert state.has_value("a", "out")
    assert state.take("a", "out") == "value"
    assert state.num_values == 0


def test_state_an_early_reader_makes_the_late_value_unneeded() -> None:
    state = QueryState("q", ["a"], {("a", "state"): 1})
    assert state.take("a", "state") is MISSING  # a pre-scheduled phase read it early
    state.put("a", "state", "kv")
    assert state.num_values == 0


def test_state_status_moves_forward_and_counts_terminal_nodes_once() -> None:
    state = QueryState("q", ["a", "b"], {})
    state.set_status("a", NodeStatus.READY)
    state.set_status("a", NodeStatus.RUNNING)
    state.set_status("a", NodeStatus.DONE)
    state.set_status("b", NodeStatus.SKIPPED)
    assert state.num_unfinished == 0
    with pytest.raises(RuntimeError, match="'a' is already done; cannot become cancelled"):
        state.set_status("a", NodeStatus.CANCELLED)


def _plan(graph: Graph, costs: dict[str, float] | None = None) -> GraphPlan:
    costs = costs or {}
    return GraphPlan(graph, lambda node: costs.get(node.name, 0.0))


def test_plan_depth_is_the_longest_hop_distance_to_an_output() -> None:
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    b.output("short", b.embed("e1", texts))
    b.output("long", b.web("w", b.embed("e2", b.embed("e3", texts))))
    plan = _plan(b.graph)
    depths = {name: plan.nodes[name].depth for name in plan.order}
    assert depths == {"texts": 4, "e1": 1, "short": 0, "e3": 3, "e2": 2, "w": 1, "long": 0}


def test_plan_rank_is_cost_plus_the_longest_remaining_path() -> None:
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    b.output("out1", b.embed("cheap_then_dear", b.embed("start", texts)))
    b.output("out2", b.web("dear", ("start", ops.VECTORS)))
    plan = _plan(b.graph, {"start": 1.0, "cheap_then_dear": 0.5, "dear": 3.0})
    ranks = plan.ranks()
    assert ranks["start"] == pytest.approx(4.0)
    assert ranks["texts"] == pytest.approx(4.0)
    assert plan.ranks(excluded=["dear"])["start"] == pytest.approx(1.5)


def test_plan_relaxes_only_the_state_edge_between_phases_of_one_call() -> None:
    plan = _plan(answer_graph())
    assert plan.nodes["prefill"].children == [("decode", True)]
    assert plan.nodes["question"].children == [("prefill", False)]
    assert plan.nodes["decode"].children == [("answer", False)]


def test_plan_rejects_a_port_fed_twice_and_cycles() -> None:
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    b.embed("e", texts)
    b.graph.connect("texts", ops.VALUE, "e", ops.ITEMS, select=(0, 1))
    with pytest.raises(GraphError, match=r"input e\.items is fed by more than one edge"):
        _plan(b.graph)
    g = Graph()
    g.add_node(Node("x", Op.AGGREGATE, params={"mode": "all"}))
    g.add_node(Node("y", Op.AGGREGATE, params={"mode": "all"}))
    g.order("x", "y")
    g.order("y", "x")
    with pytest.raises(GraphError, match="cycle through x, y"):
        _plan(g)


def _aggregate(mode: str, num_parts: int, **params: object) -> Node:
    b = Builder()
    parts = [b.input(f"p{i}") for i in range(num_parts)]
    b.aggregate("agg", parts, mode, **params)
    return b.graph.node("agg")


def _hit(chunk_id: int, score: float) -> Hit:
    return Hit(Chunk(f"c{chunk_id}", "doc", chunk_id), score)


def test_aggregate_modes() -> None:
    concat = _aggregate("concat", 3)
    assert run_aggregate(concat, {"part_0": ["a"], "part_1": SKIPPED, "part_2": ["b", "c"]}) == [
        "a",
        "b",
        "c",
    ]
    arrays = run_aggregate(concat, {"part_0": np.ones((1, 2)), "part_1": np.zeros((2, 2))})
    assert arrays.shape == (3, 2)
    top_k = _aggregate("top_k", 2, top_k=2)
    merged = run_aggregate(
        top_k, {"part_0": [_hit(1, 0.5), _hit(2, 0.9)], "part_1": [_hit(1, 0.7), _hit(3, 0.1)]}
    )
    assert [(h.chunk.chunk_id, h.score) for h in merged] == [(2, 0.9), (1, 0.7)]
    assert run_aggregate(_aggregate("all", 2), {"part_0": "x", "part_1": "y"}) == "x"
    first = _aggregate("first", 3)
    assert run_aggregate(first, {"part_0": SKIPPED, "part_1": None, "part_2": "z"}) == "z"
    assert run_aggregate(first, {"part_0": SKIPPED, "part_1": SKIPPED, "part_2": None}) is SKIPPED


@pytest.mark.parametrize(
    ("decision", "predicate", "expected"),
    [
        ("Yes, it is.", "yes", True),
        ('"YES"', "yes", True),
        ("no", "yes", False),
        ("web", "web", True),
        (True, "yes", True),
        (None, "yes", False),
    ],
)
def test_condition_decisions(decision: object, predicate: str, expected: bool) -> None:
    assert is_decision_true(decision, {"predicate": predicate}) is expected


class _RecordingEngine(FakeEngine):
    """Resolves at once; records submit calls."""

    kind = EngineKind.EMBEDDER

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        self.batches.append(list(batch))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outputs]] = [loop.create_future() for _ in batch]
        for future in futures:
            future.set_result({})
        return futures


async def test_worker_wakes_on_add_and_on_the_max_wait_timer_only() -> None:
    clock = ManualClock(start_s=100.0)
    engine = _RecordingEngine("embedder")
    scheduler = EngineScheduler(
        "embedder", LatencyProfile(max_batch_size=8), policy="fifo", max_wait_ms=5.0
    )
    dispatched: list[Batch] = []
    worker = EngineWorker(
        "embedder",
        [engine],
        scheduler,
        clock,
        on_dispatch=lambda name, batch: dispatched.append(batch),
        on_result=lambda request, outputs, error: None,
    )
    worker.add(_request("q1"))
    clock.advance(0.0)  # the coalesced wake-up: held, a timer armed at +5 ms
    assert engine.batches == [] and clock.num_pending_timers == 1
    clock.advance(0.002)
    worker.add(_request("q2"))
    clock.advance(0.0)
    assert engine.batches == []
    clock.advance(0.003)  # the oldest waited 5 ms: one call carries both queries
    assert [[r.query_id for r in b] for b in engine.batches] == [["q1", "q2"]]
    assert dispatched[0].formed_s == pytest.approx(100.005)
    assert clock.num_pending_timers == 0  # nothing queued: no timer, no polling
    worker.close()


def _request(query_id: str) -> EngineRequest:
    return EngineRequest(query_id, "embed", Op.EMBED, inputs={}, params={})


def test_plan_rank_of_a_stage_counts_the_stages_after_it_on_its_engine() -> None:
    """Stages of one batch run one after another on one engine: stage 0 waits for no
    edge of stage 1, but the batch is done only when the last stage is. What makes a
    node a stage is its provenance; the names here say nothing."""
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    for i in range(3):
        stage = Provenance("embed", "decompose_stages", Fraction(1, 3), Stage("embed", i, 3))
        b.output(f"out{i}", b.embed(f"piece_{2 - i}", texts, provenance=stage))
    b.output("out_other", b.embed("other", texts))
    costs = {"piece_2": 1.0, "piece_1": 1.0, "piece_0": 0.5, "other": 2.0}
    ranks = _plan(b.graph, costs).ranks()
    assert ranks["piece_0"] == pytest.approx(0.5)  # stage 2
    assert ranks["piece_1"] == pytest.approx(1.5)
    assert ranks["piece_2"] == pytest.approx(2.5)  # stage 0: more urgent than "other" (2.0)
    assert ranks["texts"] == pytest.approx(2.5)
    assert _plan(b.graph, costs).ranks(excluded=["piece_1"])["piece_2"] == pytest.approx(1.0)
