"""Overhead and scale-out of the Ray backend, side by side with the in-process runtime.

Three measurements in one run, on a local multi-node Ray cluster on the loopback
(``ray.cluster_utils.Cluster``: a head and two worker nodes):

1. Per primitive: one request through ``Engine.submit`` and back, in-process vs through
   a ``RayEngine`` proxy to the same engine class in an actor (an embed request, and an
   LLM decode that streams its text back), on the zero-latency fakes, so all that is
   measured is the path. Target: the Ray overhead is at most 2 ms per primitive.
2. Per query: whole queries one at a time (naive_rag, advanced_rag) on the same
   zero-latency fakes, every engine in-process vs every engine in its own actor; the
   overhead per query is the difference of the medians, and per primitive that divided
   by the engine primitives on the query's measured critical path.
3. Throughput: naive_rag queries in a closed loop with 1, 2 and 4 instances of the
   embedder in actors (the LLM and index in-process, zero latency), once with the fake
   embedder at its profile's latency (an engine that waits on its device: instances
   add capacity) and once with the real MiniLM embedder (onnxruntime, 1 thread per
   actor; this machine has 2 cores, so real compute stops scaling at 2).

Seeded; prints one result line; saves JSON (default docs/bench/ray.json).

    python bench/bench_ray.py [--num-requests 300] [--num-queries 30] [--seed 0]
        [--throughput-queries 16] [--skip-real]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every address on the loopback
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray
from ray import cloudpickle
from ray.cluster_utils import Cluster

from primflow.apps import get_app
from primflow.engines.base import Engine, EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.ray_actors import ActorResources, RayEngine, create_actors
from primflow.graph.ir import INLINE_OPS, Op
from primflow.session import Session, embedded_factory, fake_factory
from primflow.session.engine_config import config_factory, parse_engine_config
from primflow.session.stack import EngineFactory, EngineStack
from primflow.testing.fake_llm import FakeLLM
from primflow.testing.fakes import FakeEmbedder

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors run our factories

REPO = Path(__file__).resolve().parents[1]
OUT_PATH = REPO / "docs" / "bench" / "ray.json"
TARGET_MS = 2.0
LOOPBACK = "127.0.0.1"
OVERHEAD_APPS = ("naive_rag", "advanced_rag")
INSTANCE_COUNTS = (1, 2, 4)


def start_cluster() -> Cluster:
    node = {"node_ip_address": LOOPBACK, "object_store_memory": 200 * 1024 * 1024}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**node, "num_cpus": 2, "include_dashboard": False},
    )
    for _ in range(2):
        cluster.add_node(**node, num_cpus=4, resources={"worker_node": 4})
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address=LOOPBACK,
    )
    return cluster


def real_embedder_factory(
    name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
) -> Engine | list[Engine]:
    """The real MiniLM embedder; zero-latency fakes for everything else."""
    if kind is EngineKind.EMBEDDER:
        return embedded_factory()(name, kind, budget, profile)
    return fake_factory(0.0)(name, kind, budget, profile)


def ray_stack(
    app: str, engines: Mapping[str, Mapping[str, Any]], inner: EngineFactory
) -> EngineStack:
    entries = {name: {"backend": "ray", **fields} for name, fields in engines.items()}
    config = parse_engine_config({"engines": entries}, "<bench>")
    return EngineStack.for_apps([app], config_factory(config, inner))


# -- 1. per primitive ---------------------------------------------------------------
async def round_trips_ms(engine: Engine, request: EngineRequest, num: int) -> list[float]:
    times: list[float] = []
    for i in range(num + 10):
        request.query_id = f"q{i}"
        request.llm_request_id = f"q{i}/call" if request.llm_request_id else None
        started_s = time.perf_counter()
        (future,) = engine.submit([request])
        await future
        if i >= 10:  # warm-up: connections, first-call imports
            times.append((time.perf_counter() - started_s) * 1000)
        engine.release(request.query_id)
    return times


async def per_primitive(num_requests: int) -> dict[str, Any]:
    embed = EngineRequest("q", "embed", Op.EMBED, {"items": ["a question"]}, {})
    decode = EngineRequest(
        "q", "decode", Op.LLM_DECODE, {}, {"max_tokens": 16}, llm_request_id="q/call"
    )
    decode.on_text = lambda text: None
    results: dict[str, Any] = {}
    for label, engine_class, request in (
        ("embed", FakeEmbedder, embed),
        ("llm_decode_streamed", FakeLLM, decode),
    ):
        local = engine_class("engine", latency_scale=0.0)
        build = _fake_builder(engine_class)
        [(actor, description)] = create_actors(label, build, ActorResources(num_cpus=0), 1)
        remote = RayEngine(label, 0, actor, description)
        await remote.start()
        in_process = await round_trips_ms(local, request, num_requests)
        on_ray = await round_trips_ms(remote, request, num_requests)
        ray.kill(actor, no_restart=True)
        results[label] = {
            "in_process_p50_ms": statistics.median(in_process),
            "ray_p50_ms": statistics.median(on_ray),
            "ray_p90_ms": sorted(on_ray)[int(0.9 * len(on_ray))],
            "overhead_p50_ms": statistics.median(on_ray) - statistics.median(in_process),
        }
    return results


def _fake_builder(engine_class: type[Engine]) -> Any:
    def build(budget: CoreBudget) -> Engine:
        return engine_class("engine", latency_scale=0.0)  # type: ignore[call-arg]

    return build


# -- 2. per query -------------------------------------------------------------------
async def query_times(stack: EngineStack, app_name: str, num: int) -> tuple[list[float], int]:
    app = get_app(app_name)
    query = app.sample_query()
    changes = dict(app.sample_config_changes)
    times: list[float] = []
    num_engine_steps = 0
    async with stack, Session(stack) as session:
        for i in range(num + 3):
            started_s = time.perf_counter()
            answer = await session.ask(
                app_name, query.question, list(query.documents), config_changes=changes
            )
            if i >= 3:  # warm-up: the graph cache, the actors' first calls
                times.append((time.perf_counter() - started_s) * 1000)
            ops = {node.name: node.op for node in answer.graph.nodes}
            path = answer.timing.critical_path
            num_engine_steps = sum(1 for name in path if ops.get(name) not in INLINE_OPS)
    return times, num_engine_steps


async def per_query(num_queries: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for app_name in OVERHEAD_APPS:
        local = EngineStack.for_apps([app_name], fake_factory(0.0))
        in_process, num_steps = await query_times(local, app_name, num_queries)
        kinds = EngineStack.for_apps([app_name], fake_factory(0.0)).engines
        every = {name: {"num_cpus": 0} for name in kinds}
        on_ray, _ = await query_times(
            ray_stack(app_name, every, fake_factory(0.0)), app_name, num_queries
        )
        overhead_ms = statistics.median(on_ray) - statistics.median(in_process)
        results[app_name] = {
            "in_process_p50_ms": statistics.median(in_process),
            "ray_p50_ms": statistics.median(on_ray),
            "overhead_per_query_ms": overhead_ms,
            "engine_primitives_on_critical_path": num_steps,
            "overhead_per_primitive_ms": overhead_ms / max(1, num_steps),
        }
    return results


# -- 3. throughput ------------------------------------------------------------------
async def throughput_qps(stack: EngineStack, num_queries: int) -> dict[str, Any]:
    app = get_app("naive_rag")
    query = app.sample_query()
    async with stack, Session(stack) as session:
        await session.ask("naive_rag", query.question, list(query.documents))  # warm-up
        started_s = time.perf_counter()
        await asyncio.gather(
            *(
                session.ask("naive_rag", query.question, list(query.documents))
                for _ in range(num_queries)
            )
        )
        elapsed_s = time.perf_counter() - started_s
        embedders = [e for e in stack.instances["embedder"] if isinstance(e, RayEngine)]
        used = [ray.get(e.actor.engine_attribute.remote("num_batches")) for e in embedders]
    return {"qps": num_queries / elapsed_s, "batches_per_instance": used}


async def throughput(num_queries: int, is_real_skipped: bool) -> dict[str, Any]:
    variants: dict[str, EngineFactory] = {"fake_embedder": fake_factory(1.0)}
    if not is_real_skipped:
        variants["minilm_embedder"] = real_embedder_factory
    results: dict[str, Any] = {}
    for label, inner in variants.items():
        by_count: dict[str, Any] = {}
        for count in INSTANCE_COUNTS:
            fields = {"num_instances": count, "num_cpus": 1, "resources": {"worker_node": 1}}
            # The LLM and index stay in-process at zero latency: the embedder is the
            # bottleneck being scaled out.
            factory = _zero_latency_except_embedder(inner)
            stack = ray_stack("naive_rag", {"embedder": fields}, factory)
            by_count[str(count)] = await throughput_qps(stack, num_queries)
        results[label] = by_count
    return results


def _zero_latency_except_embedder(inner: EngineFactory) -> EngineFactory:
    zero = fake_factory(0.0)

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine | Any:
        return (inner if kind is EngineKind.EMBEDDER else zero)(name, kind, budget, profile)

    return build


# -- main ---------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-requests", type=int, default=300)
    parser.add_argument("--num-queries", type=int, default=30)
    parser.add_argument("--throughput-queries", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-real", action="store_true", help="no MiniLM throughput")
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args()
    started_s = time.perf_counter()
    cluster = start_cluster()
    try:
        primitive = asyncio.run(per_primitive(args.num_requests))
        query = asyncio.run(per_query(args.num_queries))
        scale = asyncio.run(throughput(args.throughput_queries, args.skip_real))
    finally:
        ray.shutdown()
        cluster.shutdown()
    result = {
        "date": datetime.date.today().isoformat(),
        "ray": ray.__version__,
        "python": platform.python_version(),
        "num_cores": os.cpu_count(),
        "seed": args.seed,
        "target_ms_per_primitive": TARGET_MS,
        "per_primitive": primitive,
        "per_query": query,
        "throughput": scale,
        "wall_s": time.perf_counter() - started_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    worst_ms = max(r["overhead_p50_ms"] for r in primitive.values())
    per_prim = max(r["overhead_per_primitive_ms"] for r in query.values())
    fake = scale["fake_embedder"]
    print(
        f"ray overhead per primitive p50 {worst_ms:.2f} ms (target <= {TARGET_MS:g}); "
        f"per query-primitive {per_prim:.2f} ms; fake-embedder q/s at 1/2/4 instances "
        + "/".join(f"{fake[str(n)]['qps']:.1f}" for n in INSTANCE_COUNTS)
        + (
            "; MiniLM q/s "
            + "/".join(f"{scale['minilm_embedder'][str(n)]['qps']:.2f}" for n in INSTANCE_COUNTS)
            if "minilm_embedder" in scale
            else ""
        )
        + f" -> {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
