"""The simulator: the real runtime on fake engines, on a virtual-time event loop.

``simulate(workload, config)`` draws Poisson arrivals, starts each query at its virtual
arrival time on one ``Runtime`` (graph scheduler + engine schedulers + batching
policies, exactly the production code) whose engines are latency-model fakes, and
records each query's end-to-end latency. Invariants:

- Deterministic: one seed fixes the arrivals, the generated queries and (through the
  virtual loop) every event time, so a seeded run gives identical results twice.
- No real time passes and no threads run; a minute of traffic takes well under a
  second of wall time for small apps.
- A failed or timed-out query is counted in ``num_failed`` with its error, never
  averaged into latency.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from primflow.baselines import baseline_executor
from primflow.baselines.rounds import run_rounds
from primflow.engines.base import Engine
from primflow.engines.policies import POLICIES
from primflow.engines.profile import LatencyProfile
from primflow.runtime.query_state import QueryResult
from primflow.runtime.runtime import Runtime
from primflow.sim.arrivals import poisson_arrivals
from primflow.sim.balanced import BalancedEngine
from primflow.sim.engines import (
    DEFAULT_LLM_CONTENTION,
    DEFAULT_MAX_NUM_LLM_CALLS,
    LLM_MODELS,
    build_engines,
    check_instances,
)
from primflow.sim.profiles import preset
from primflow.sim.stats import LatencyStats
from primflow.sim.workload import SimQuery, Workload
from primflow.testing.clock import run_virtual
from primflow.testing.fake_llm import FakeLLM


@dataclass(frozen=True, slots=True)
class SimConfig:
    rate_qps: float
    duration_s: float
    policy: str = "topology"
    # Per-engine overrides of ``policy``, e.g. {"embedder": "fifo"}.
    engine_policies: Mapping[str, str] = field(default_factory=dict)
    instances: Mapping[str, int] = field(default_factory=dict)
    hardware: str = "gpu"
    seed: int = 0
    max_wait_ms: float = 2.0
    deadline_s: float | None = None
    llm_contention: float = DEFAULT_LLM_CONTENTION
    # None: the workload's choice, else DEFAULT_MAX_NUM_LLM_CALLS.
    max_num_llm_calls: int | None = None
    # Fixed arrival times (s) instead of Poisson ones, for hand-built scenarios.
    arrivals_s: tuple[float, ...] | None = None
    # "calls" (per-call latency, load slowdown) or "steps" (shared engine steps).
    llm_model: str = "calls"
    # Batches one web search instance runs at once (an API serves many callers).
    max_num_web_search_calls: int = 1
    # None: every engine on its own device; else the LLM, embedder and reranker share
    # this many cores (one host, `shared` placement).
    shared_cores: float | None = None
    # Fixed constrained decisions (decode node -> choice), e.g. a judge's, so a
    # simulation takes the branches a real run took; others: the fake's own pick.
    llm_decisions: Mapping[str, str] = field(default_factory=dict)
    # Characters of text per web-search result (0: the fake's short titles).
    web_snippet_chars: int = 0
    # Measured profiles (`primflow profile`) by engine kind or name, over the preset's.
    profiles: Mapping[str, LatencyProfile] = field(default_factory=dict)

    def check(self) -> None:
        for name, chosen in {"": self.policy, **self.engine_policies}.items():
            if chosen not in POLICIES:
                where = f" for engine {name!r}" if name else ""
                known = ", ".join(POLICIES)
                raise ValueError(f"unknown batching policy {chosen!r}{where} (known: {known})")
        if self.max_wait_ms < 0:
            raise ValueError(f"max wait must be >= 0 ms, got {self.max_wait_ms}")
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ValueError(f"deadline must be > 0 s, got {self.deadline_s}")
        if self.max_num_llm_calls is not None and self.max_num_llm_calls < 1:
            raise ValueError(f"max LLM calls must be >= 1, got {self.max_num_llm_calls}")
        if self.llm_contention < 0:
            raise ValueError(f"LLM contention must be >= 0, got {self.llm_contention}")
        if self.max_num_web_search_calls < 1:
            raise ValueError(f"web search calls must be >= 1, got {self.max_num_web_search_calls}")
        if self.shared_cores is not None and not self.shared_cores > 0:
            raise ValueError(f"shared cores must be > 0, got {self.shared_cores}")
        if self.web_snippet_chars < 0:
            raise ValueError(f"web snippet length must be >= 0, got {self.web_snippet_chars}")
        if self.llm_model not in LLM_MODELS:
            known = ", ".join(LLM_MODELS)
            raise ValueError(f"unknown LLM model {self.llm_model!r} (known: {known})")
        preset(self.hardware)

    def profiles_by_kind(self) -> dict[str, LatencyProfile]:
        """The preset's profiles with the measured ones (``profiles``) put over them."""
        return {**preset(self.hardware), **self.profiles}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["engine_policies"] = dict(self.engine_policies)
        data["instances"] = dict(self.instances)
        data["arrivals_s"] = None if self.arrivals_s is None else list(self.arrivals_s)
        data["llm_decisions"] = dict(self.llm_decisions)
        data["profiles"] = {name: p.to_dict() for name, p in self.profiles.items()}
        return data


@dataclass(frozen=True, slots=True)
class QueryRecord:
    query_id: str
    arrival_s: float
    latency_s: float | None
    error: str | None = None
    # Seconds the query's primitives spent at each engine (handed over to finished,
    # summed over its nodes; phases waiting inside the engine count); runtime runs only.
    engine_s: dict[str, float] = field(default_factory=dict)
    num_rounds: int = 0  # rounds a loop appended to the query's graph


@dataclass(frozen=True)
class SimResult:
    workload: str
    config: SimConfig
    queries: list[QueryRecord]
    stats: LatencyStats
    makespan_s: float
    engines: dict[str, dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "config": self.config.to_dict(),
            "stats": self.stats.to_dict(),
            "makespan_s": self.makespan_s,
            "engines": self.engines,
            "info": self.info,
            "queries": [asdict(q) for q in self.queries],
        }


def simulate(workload: Workload, config: SimConfig) -> SimResult:
    """Run ``workload`` under ``config`` on the virtual clock; see the module docstring."""
    config.check()
    check_instances(config.instances, workload.kinds)
    rng = np.random.default_rng(config.seed)
    if config.arrivals_s is not None:
        arrivals_s = sorted(config.arrivals_s)
    else:
        arrivals_s = poisson_arrivals(config.rate_qps, config.duration_s, rng)
    return run_virtual(_run(workload, config, arrivals_s, rng), seed=config.seed)


async def _run(
    workload: Workload, config: SimConfig, arrivals_s: list[float], rng: np.random.Generator
) -> SimResult:
    profiles = workload.profiles(config.profiles_by_kind())
    max_num_llm_calls = (
        config.max_num_llm_calls or workload.max_num_llm_calls or DEFAULT_MAX_NUM_LLM_CALLS
    )
    engines = build_engines(
        workload.kinds,
        profiles,
        config.instances,
        llm_contention=config.llm_contention,
        max_num_llm_calls=max_num_llm_calls,
        llm_model=config.llm_model,
        max_num_web_search_calls=config.max_num_web_search_calls,
        web_snippet_chars=config.web_snippet_chars,
        shared_cores=config.shared_cores,
    )
    for instances in engines.values():
        for engine in instances:
            if isinstance(engine, FakeLLM):
                for node, choice in config.llm_decisions.items():
                    engine.set_response(node, choice)
    run_query, serving = _query_runner(workload, config, engines, profiles)
    loop = asyncio.get_running_loop()
    # Queries are made up front so the Generator's draws do not depend on event order.
    queries = [workload.make_query(i, rng) for i in range(len(arrivals_s))]
    records: list[QueryRecord | None] = [None] * len(arrivals_s)

    async def one(index: int) -> None:
        arrival_s = arrivals_s[index]
        await asyncio.sleep(max(0.0, arrival_s - loop.time()))
        query_id = f"q{index}"
        try:
            result = await run_query(queries[index], query_id)
        except Exception as exc:  # a failed query is a data point, not a crash
            records[index] = QueryRecord(query_id, arrival_s, None, f"{type(exc).__name__}: {exc}")
            return
        latency_s = loop.time() - arrival_s
        # The baseline executor times its nodes by the wall clock, not the loop's.
        engine_s = {} if workload.module_order is not None else _engine_s(result)
        records[index] = QueryRecord(
            query_id, arrival_s, latency_s, None, engine_s, len(result.rounds)
        )

    async with serving, asyncio.TaskGroup() as tg:
        for index in range(len(arrivals_s)):
            tg.create_task(one(index))
    finished = [r for r in records if r is not None]
    return _result(workload, config, finished, engines)


def _query_runner(
    workload: Workload,
    config: SimConfig,
    engines: dict[str, list[Engine]],
    profiles: Mapping[str, LatencyProfile],
) -> tuple[Callable[[SimQuery, str], Awaitable[QueryResult]], AbstractAsyncContextManager[Any]]:
    """How a query runs (on the runtime, or on the module-level baseline executor) and
    what must be open while queries run (the runtime; nothing for the executor)."""
    if workload.module_order is not None:
        balanced = {name: BalancedEngine(instances) for name, instances in engines.items()}
        executor = baseline_executor(workload.module_order, balanced)

        async def run_on_modules(query: SimQuery, query_id: str) -> QueryResult:
            if query.growth is not None:
                result, _ = await run_rounds(
                    executor, query.growth, query.graph, query.inputs, query_id, None
                )
                return result
            return await executor.run(query.graph, query.inputs, query_id=query_id)

        return run_on_modules, contextlib.nullcontext()
    policies = {name: config.engine_policies.get(name, config.policy) for name in engines}
    runtime = Runtime(engines, policy=policies, max_wait_ms=config.max_wait_ms, profiles=profiles)

    async def run_on_runtime(query: SimQuery, query_id: str) -> QueryResult:
        return await runtime.run(
            query.graph,
            query.inputs,
            query_id=query_id,
            deadline_s=config.deadline_s,
            growth=query.growth,
        )

    return run_on_runtime, runtime


def _result(
    workload: Workload,
    config: SimConfig,
    records: list[QueryRecord],
    engines: Mapping[str, list[Any]],
) -> SimResult:
    latencies = [r.latency_s for r in records if r.latency_s is not None]
    num_failed = sum(1 for r in records if r.latency_s is None)
    first_s = records[0].arrival_s if records else 0.0
    makespan_s = max((r.arrival_s + (r.latency_s or 0.0) for r in records), default=0.0)
    stats = LatencyStats.from_latencies(
        latencies, num_failed=num_failed, span_s=makespan_s - first_s or None
    )
    engine_info = {
        name: {
            "kind": str(instances[0].kind),
            "num_instances": len(instances),
            "num_batches": sum(len(i.batches) for i in instances),
            "num_requests": sum(len(b) for i in instances for b in i.batches),
            "num_requests_per_instance": [sum(len(b) for b in i.batches) for i in instances],
            # Busy time over the run, per instance (a step engine's steps; a batched
            # engine's batches, so > 1 where batches overlap, as LLM calls do).
            "utilization": _utilization(instances, makespan_s),
        }
        for name, instances in engines.items()
    }
    return SimResult(workload.name, config, records, stats, makespan_s, engine_info, workload.info)


def _engine_s(result: QueryResult) -> dict[str, float]:
    by_engine: dict[str, float] = {}
    for timing in result.timings.values():
        if timing.engine is None or timing.start_s is None or timing.end_s is None:
            continue
        spent_s = timing.end_s - timing.start_s
        by_engine[timing.engine] = by_engine.get(timing.engine, 0.0) + spent_s
    return {name: round(spent_s, 6) for name, spent_s in by_engine.items()}


def _utilization(instances: list[Any], makespan_s: float) -> float | None:
    busy: list[float] = [getattr(instance, "busy_s", -1.0) for instance in instances]
    if makespan_s <= 0 or any(b < 0 for b in busy):
        return None
    return round(sum(busy) / (len(instances) * makespan_s), 4)
