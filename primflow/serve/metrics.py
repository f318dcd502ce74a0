"""Prometheus metrics of one server, on a registry of its own (``GET /metrics``).

Counters and histograms are updated as queries end and batches form; engine gauges
(queue depth, running, load, KV occupancy, health) are read from the runtime and the
engines at scrape time, so they are never stale. ``primflow_generated_text_pieces_total``
counts the decoded text deltas the engines streamed (one per decode step), so its
``rate()`` is the tokens/s of streamed answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from primflow.engines.base import EngineKind

if TYPE_CHECKING:
    from primflow.runtime import Runtime
    from primflow.session.stack import EngineStack

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queries = Counter(
            "primflow_queries",
            "Queries by app and final status (ok, rejected, timeout, failed, cancelled, ...)",
            ["app", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "primflow_query_latency_seconds",
            "Runtime latency of answered queries (submit to last output)",
            ["app"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "primflow_engine_batch_size",
            "Requests per batch each engine scheduler formed",
            ["engine"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.text_pieces = Counter(
            "primflow_generated_text_pieces",
            "Decoded text deltas streamed from answer decodes (one per decode step)",
            ["app"],
            registry=self.registry,
        )

    def watch(self, stack: EngineStack, runtime: Runtime, num_active: Callable[[], int]) -> None:
        self.registry.register(_EngineCollector(stack, runtime, num_active))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    def __init__(self, stack: EngineStack, runtime: Runtime, num_active: Callable[[], int]) -> None:
        self.stack = stack
        self.runtime = runtime
        self.num_active = num_active

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "primflow_queries_active", "Admitted queries queued or running in the server"
        )
        active.add_metric([], float(self.num_active()))
        yield active
        queued = GaugeMetricFamily(
            "primflow_engine_queue_depth",
            "Requests waiting in each engine scheduler",
            labels=["engine"],
        )
        running = GaugeMetricFamily(
            "primflow_engine_running", "Requests each engine is running", labels=["engine"]
        )
        healthy = GaugeMetricFamily(
            "primflow_engine_healthy", "1 if the engine reports itself healthy", labels=["engine"]
        )
        kv = GaugeMetricFamily(
            "primflow_engine_kv_occupancy",
            "Fraction of an LLM engine's KV cache in use",
            labels=["engine"],
        )
        for name, engine in self.stack.engines.items():
            worker = self.runtime.workers.get(name)
            queued.add_metric([name], float(worker.scheduler.num_queued if worker else 0))
            health = engine.health()
            running.add_metric([name], float(health.num_running))
            healthy.add_metric([name], 1.0 if health.is_healthy else 0.0)
            if engine.kind is EngineKind.LLM:
                kv.add_metric([name], float(health.load))
        yield from (queued, running, healthy, kv)
