"""Shared cores (processor sharing) and the retrieval-side simulated engines.

Times are virtual (deterministic), so comparing them is not a timed assertion.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Op
from primflow.sim.cores import SharedCores
from primflow.sim.profiles import preset
from primflow.sim.retrieval import SimEmbedder, SimWebSearch
from primflow.sim.simulator import SimConfig, simulate
from primflow.sim.workload import app_workload
from primflow.testing.clock import run_virtual


def _finish_times(cores: SharedCores, jobs: list[tuple[float, float]]) -> list[float]:
    """(start_s, work_s) jobs; when each finishes."""

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        finished = [0.0] * len(jobs)

        async def one(index: int, start_s: float, work_s: float) -> None:
            await asyncio.sleep(start_s)
            await cores.spend(work_s)
            finished[index] = loop.time()

        async with asyncio.TaskGroup() as tg:
            for index, (start_s, work_s) in enumerate(jobs):
                tg.create_task(one(index, start_s, work_s))
        return finished

    return run_virtual(main())


def test_jobs_share_the_cores_and_speed_up_when_one_leaves() -> None:
    assert _finish_times(SharedCores(2), [(0.0, 1.0)]) == [pytest.approx(1.0)]
    # Two jobs that each use both cores: half speed while both run.
    assert _finish_times(SharedCores(2), [(0.0, 1.0), (0.0, 1.0)]) == [pytest.approx(2.0)] * 2
    # The second starts at 0.5: both at half speed until the first ends at 1.5, then
    # the second (0.5 s of work left) runs alone.
    assert _finish_times(SharedCores(2), [(0.0, 1.0), (0.5, 1.0)]) == [
        pytest.approx(1.5),
        pytest.approx(2.0),
    ]
    # Jobs of one core each on two cores do not slow each other.
    one_core = SharedCores(2, cores_per_job=1)
    assert _finish_times(one_core, [(0.0, 1.0), (0.0, 1.0)]) == [pytest.approx(1.0)] * 2


def test_a_cancelled_job_frees_its_share() -> None:
    cores = SharedCores(1)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        slow = asyncio.ensure_future(cores.spend(10.0))
        other = asyncio.ensure_future(cores.spend(1.0))
        await asyncio.sleep(0.5)  # both at half speed: 0.25 s of work each so far
        slow.cancel()
        await other
        return loop.time()

    assert run_virtual(main()) == pytest.approx(1.25)


def test_bad_core_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="shared cores must be > 0"):
        SharedCores(0)
    with pytest.raises(ValueError, match="cores per job must be > 0"):
        SharedCores(2, cores_per_job=0)
    with pytest.raises(ValueError, match="shared cores must be > 0"):
        SimConfig(rate_qps=1, duration_s=1, shared_cores=0).check()


def test_sharing_cores_slows_primflow_where_engines_overlap() -> None:
    config = SimConfig(rate_qps=0.3, duration_s=20.0, hardware="cpu", seed=3)
    workload = app_workload("advanced_rag", "primflow", preset("cpu"))
    devices = simulate(workload, config)
    shared = simulate(workload, dataclasses.replace(config, shared_cores=2.0))
    assert shared.stats.mean_s > devices.stats.mean_s
    assert shared.stats.num_completed == shared.stats.num_queries


def test_sim_embedder_charges_tokens_of_its_texts() -> None:
    profile = LatencyProfile(base_s=0.0, per_item_s=0.0, per_token_s=0.01)
    request = EngineRequest(
        query_id="q",
        node="embed",
        op=Op.EMBED,
        inputs={ops.ITEMS: ["x" * 400, "y" * 40]},
        params={},
        num_items=2,
    )
    assert SimEmbedder("embedder", profile).batch_latency_s([request]) == pytest.approx(1.1)


def test_sim_web_search_snippets_have_the_given_length() -> None:
    request = EngineRequest(
        query_id="q",
        node="search",
        op=Op.WEB_SEARCH,
        inputs={ops.QUERIES: ["what is hnsw"]},
        params={"top_k": 2},
    )
    hits = SimWebSearch("web_search", snippet_chars=300).compute(request)[ops.HITS]
    assert [len(h.chunk.text) for h in hits] == [300, 300]
    assert hits[0].chunk.text.startswith("what is hnsw: result 1")
    short = SimWebSearch("web_search").compute(request)[ops.HITS]
    assert len(short[0].chunk.text) < 40
    with pytest.raises(ValueError, match="snippet length must be >= 0"):
        SimWebSearch("web_search", snippet_chars=-1)
