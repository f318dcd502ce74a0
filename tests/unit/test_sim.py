"""The simulator: the real runtime on fake engines in virtual time.

Latencies here are virtual (deterministic), so comparing them is not a timed assertion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from primflow.apps import APPS
from primflow.engines.base import EngineKind, EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph, Node, Op, Port, PortType
from primflow.graph.lint import lint
from primflow.sim.engines import SimLLM, build_engines, engine_kinds
from primflow.sim.profiles import preset
from primflow.sim.scenarios import side_calls_graph, side_calls_workload
from primflow.sim.simulator import SimConfig, simulate
from primflow.sim.workload import SCHEMES, app_workload
from primflow.testing.clock import run_virtual

GPU = preset("gpu")


def test_seeded_runs_are_identical_and_seeds_differ() -> None:
    config = SimConfig(rate_qps=2.0, duration_s=6.0, seed=11)
    workload = app_workload("advanced_rag", "primflow", GPU, queries="generated")
    first = simulate(workload, config).to_dict()
    again = simulate(app_workload("advanced_rag", "primflow", GPU, queries="generated"), config)
    assert json.dumps(first) == json.dumps(again.to_dict())
    other = simulate(workload, dataclasses.replace(config, seed=12)).to_dict()
    assert other["queries"] != first["queries"]


@pytest.mark.parametrize("app", [name for name, app in APPS.items() if not app.has_loop])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_app_runs_to_completion_in_every_scheme(app: str, scheme: str) -> None:
    workload = app_workload(app, scheme, GPU)
    result = simulate(workload, SimConfig(rate_qps=1.0, duration_s=4.0, seed=3))
    assert result.stats.num_queries > 0
    assert [q.error for q in result.queries] == [None] * result.stats.num_queries
    assert result.stats.num_completed == result.stats.num_queries
    assert all(q.latency_s is not None and q.latency_s > 0 for q in result.queries)
    # The LLM did real (simulated) work; web search may sit behind an untaken branch.
    assert result.engines["llm"]["num_requests"] > 0


def test_optimized_graphs_differ_from_sequential_ones() -> None:
    rng = np.random.default_rng(0)
    optimized = app_workload("advanced_rag", "primflow", GPU).make_query(0, rng).graph
    sequential = app_workload("advanced_rag", "sequential", GPU).make_query(0, rng).graph
    assert len(optimized) > len(sequential)


def test_side_calls_graph_is_well_formed() -> None:
    lint(side_calls_graph())


def _mean_latency(policy: str, **changes: Any) -> float:
    config = SimConfig(rate_qps=0.2, duration_s=120.0, policy=policy)
    result = simulate(side_calls_workload(), dataclasses.replace(config, **changes))
    assert result.stats.num_failed == 0
    return result.stats.mean_s


def test_topology_and_critical_path_beat_fifo_on_one_side_calls_query() -> None:
    # FIFO serves the three side calls before `plan`, so the 1 s search cannot overlap
    # them; the other two policies run `plan` first and hide the search entirely.
    fifo = _mean_latency("fifo", arrivals_s=(0.0,))
    topology = _mean_latency("topology", arrivals_s=(0.0,))
    critical_path = _mean_latency("critical_path", arrivals_s=(0.0,))
    search_s = 1.0
    assert fifo - topology == pytest.approx(search_s)
    assert critical_path == pytest.approx(topology)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_critical_path_beats_topology_beats_fifo_under_poisson_load(seed: int) -> None:
    # ~24 queries at 0.2 q/s keep the single-stream LLM ~65% busy. Critical path also
    # serves older queries first, so a new query's `plan` does not delay their answers.
    fifo = _mean_latency("fifo", seed=seed)
    topology = _mean_latency("topology", seed=seed)
    critical_path = _mean_latency("critical_path", seed=seed)
    assert topology < 0.9 * fifo
    assert critical_path < topology


def test_critical_path_is_not_longest_remaining_first_under_overload() -> None:
    # advanced_rag on the cpu preset at 3 q/s is overloaded (the embedder saturates).
    # Ranking every query's steps by remaining path alone let each new query's first
    # step overtake older queries (mean 318 s vs fifo's 156 s); now it beats both.
    config = SimConfig(rate_qps=3.0, duration_s=30.0, hardware="cpu", seed=1)
    workload = app_workload("advanced_rag", "primflow", preset("cpu"))
    means = {}
    for policy in ("fifo", "topology", "critical_path"):
        result = simulate(workload, dataclasses.replace(config, policy=policy))
        assert result.stats.num_completed == result.stats.num_queries > 50
        means[policy] = result.stats.mean_s
    assert means["critical_path"] <= means["topology"] <= means["fifo"]


def test_a_missed_deadline_is_counted_as_failed_not_averaged() -> None:
    config = SimConfig(rate_qps=1.0, duration_s=3.0, deadline_s=0.5, seed=2)
    result = simulate(app_workload("naive_rag", "primflow", GPU), config)
    assert result.stats.num_completed == 0
    assert result.stats.num_failed == result.stats.num_queries > 0
    assert all(q.error and "QueryTimeout" in q.error for q in result.queries)


def test_a_second_llm_instance_lowers_latency_under_load() -> None:
    config = SimConfig(rate_qps=3.0, duration_s=10.0, seed=4, llm_contention=0.2)
    workload = app_workload("naive_rag", "primflow", GPU)
    one = simulate(workload, config)
    two = simulate(workload, dataclasses.replace(config, instances={"llm": 2}))
    assert two.engines["llm"]["num_instances"] == 2
    assert two.stats.mean_s < one.stats.mean_s


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"policy": "lifo"}, "unknown batching policy 'lifo'"),
        ({"engine_policies": {"llm": "x"}}, "for engine 'llm'"),
        ({"instances": {"gpu": 2}}, "names engine 'gpu'"),
        ({"instances": {"llm": 0}}, "at least 1 instance"),
        ({"hardware": "tpu"}, "unknown hardware preset"),
        ({"max_wait_ms": -1.0}, "max wait"),
        ({"rate_qps": 0.0}, "request rate"),
    ],
)
def test_bad_configs_are_named(changes: dict[str, Any], message: str) -> None:
    config = dataclasses.replace(SimConfig(rate_qps=1.0, duration_s=1.0), **changes)
    with pytest.raises(ValueError, match=message):
        simulate(side_calls_workload(), config)


def test_sim_llm_slows_down_with_requests_already_running() -> None:
    profile = LatencyProfile(base_s=1.0, max_batch_size=8)

    async def main() -> list[float]:
        llm = SimLLM("llm", profile, llm_contention=0.5)
        loop = asyncio.get_running_loop()
        requests = [_decode_request(f"q{i}") for i in range(3)]
        futures = [llm.submit([r])[0] for r in requests]
        done: list[float] = []
        for future in futures:
            await future
            done.append(loop.time())
        return done

    # The i-th request starts while i others run: 1 + 0.5 * i times the base latency.
    assert run_virtual(main()) == [1.0, 1.5, 2.0]


def _decode_request(query_id: str) -> EngineRequest:
    return EngineRequest(
        query_id=query_id,
        node="answer.decode",
        op=Op.LLM_DECODE,
        inputs={},
        params={"max_tokens": 0},
        llm_request_id=f"{query_id}/answer",
    )


def test_engine_kinds_and_instances() -> None:
    kinds = engine_kinds(side_calls_graph())
    assert kinds == {"llm": EngineKind.LLM, "web_search": EngineKind.WEB_SEARCH}
    engines = build_engines(kinds, {"llm": GPU["llm"], "web_search": GPU["web_search"]}, {"llm": 3})
    assert [len(engines[name]) for name in ("llm", "web_search")] == [3, 1]
    bad = Graph(
        [
            Node("a", Op.EMBED, inputs=(Port("items", PortType.TEXTS),), engine="x"),
            Node("b", Op.RERANK, inputs=(Port("hits", PortType.HITS),), engine="x"),
        ]
    )
    with pytest.raises(ValueError, match="engine 'x' runs both"):
        engine_kinds(bad)
