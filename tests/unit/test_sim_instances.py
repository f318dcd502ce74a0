"""Several instances per engine in the simulator, and the module-level baselines there.

The runtime's engine scheduler and the baselines' ``BalancedEngine`` both spread work
over an engine's instances; fakes stand in for the engines (scheduling logic only).
Latencies are virtual, so comparing them is not a timed assertion.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from primflow.engines.base import EngineKind, EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Op
from primflow.sim.balanced import BalancedEngine
from primflow.sim.profiles import preset
from primflow.sim.simulator import SimConfig, simulate
from primflow.sim.workload import app_workload
from primflow.testing.clock import run_virtual
from primflow.testing.fakes import FakeEmbedder, FakeLLM

GPU = preset("gpu")


@pytest.mark.parametrize("baselines", ["graph", "modules"])
def test_every_instance_serves_under_load_and_more_instances_cut_latency(
    baselines: str,
) -> None:
    scheme = "primflow" if baselines == "graph" else "sequential"
    workload = app_workload("naive_rag", scheme, preset("cpu"), baselines=baselines)
    config = SimConfig(rate_qps=0.4, duration_s=30.0, hardware="cpu", seed=4)
    one = simulate(workload, config)
    three = simulate(workload, dataclasses.replace(config, instances={"embedder": 3}))
    per_instance = three.engines["embedder"]["num_requests_per_instance"]
    assert len(per_instance) == 3 and min(per_instance) > 0
    # Least-loaded first: no instance gets more than half the work.
    assert max(per_instance) <= sum(per_instance) / 2
    assert three.stats.mean_s < one.stats.mean_s
    assert three.stats.num_completed == three.stats.num_queries


def test_module_level_baselines_run_the_unoptimized_graph_without_batching() -> None:
    config = SimConfig(rate_qps=1.0, duration_s=20.0, seed=5, llm_model="steps")
    graph_mode = app_workload("advanced_rag", "sequential", GPU)
    modules = app_workload("advanced_rag", "sequential", GPU, baselines="modules")
    assert modules.module_order == "sequential" and graph_mode.module_order is None
    primflow = simulate(app_workload("advanced_rag", "primflow", GPU), config)
    sequential = simulate(modules, config)
    parallel = simulate(app_workload("advanced_rag", "parallel", GPU, baselines="modules"), config)
    assert sequential.stats.num_completed == sequential.stats.num_queries
    # One engine call per primitive: every batch holds one request.
    assert all(info["num_batches"] == info["num_requests"] for info in sequential.engines.values())
    assert primflow.stats.mean_s < parallel.stats.mean_s < sequential.stats.mean_s


def _request(query_id: str, node: str, op: Op = Op.EMBED) -> EngineRequest:
    return EngineRequest(
        query_id=query_id,
        node=node,
        op=op,
        inputs={"items": ["a text"]},
        params={"template": "{items}"},
        num_items=1,
        llm_request_id=f"{query_id}/{node}" if op in (Op.LLM_PREFILL, Op.LLM_DECODE) else None,
    )


def test_balanced_engine_queues_at_busy_instances_and_spreads_calls() -> None:
    profile = LatencyProfile(base_s=1.0)

    async def main() -> tuple[list[float], list[int]]:
        instances = [FakeEmbedder("embedder", profile) for _ in range(2)]
        engine = BalancedEngine(instances)
        loop = asyncio.get_running_loop()
        futures = [engine.submit([_request(f"q{i}", "embed")])[0] for i in range(4)]
        finished = []
        for future in futures:
            await future
            finished.append(loop.time())
        return finished, [len(i.batches) for i in instances]

    finished, batches = run_virtual(main())
    # Two at a time (one per instance), each instance one call after another.
    assert finished == [pytest.approx(t) for t in (1.0, 1.0, 2.0, 2.0)]
    assert batches == [2, 2]


def test_balanced_engine_keeps_an_llm_call_on_one_instance_and_reads_kv_load() -> None:
    async def main() -> list[list[str]]:
        instances = [FakeLLM("llm", LatencyProfile(base_s=0.5)) for _ in range(2)]
        engine = BalancedEngine(instances)
        assert engine.kind is EngineKind.LLM
        first = engine.submit([_request("a", "answer", Op.LLM_PREFILL)])
        second = engine.submit([_request("b", "answer", Op.LLM_PREFILL)])
        await asyncio.gather(*first, *second)
        # Phase two of a's call goes where a's prefill ran, whatever the loads.
        again = engine.submit([_request("a", "answer", Op.LLM_PREFILL)])
        await asyncio.gather(*again)
        engine.release("a")
        engine.release("b")
        return [[r.query_id for b in i.batches for r in b] for i in instances]

    assert run_virtual(main()) == [["a", "a"], ["b"]]


def test_balanced_engine_needs_an_instance() -> None:
    with pytest.raises(ValueError, match="at least one instance"):
        BalancedEngine([])
