"""The server's runtime hook: per-query ``node_done`` events and batch metrics.

``ServerHook`` keeps, per running query, the graph it runs (from ``on_query_start``) and
an optional listener; both are dropped when the query ends, whatever the end, so no
per-query value outlives its query (``num_tracked_queries`` is 0 when idle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from primflow.graph.ir import Graph
from primflow.runtime import Hook, NodeStatus, NodeTiming, QueryResult
from primflow.serve.metrics import ServerMetrics

if TYPE_CHECKING:
    from primflow.engines.scheduler import Batch

NodeListener = Callable[[dict[str, Any]], None]


class ServerHook(Hook):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics
        self.graphs: dict[str, Graph] = {}
        self.listeners: dict[str, NodeListener] = {}
        self.ends_s: dict[str, dict[str, float]] = {}  # query -> node -> end (clock s)

    @property
    def num_tracked_queries(self) -> int:
        return len(self.graphs) + len(self.listeners) + len(self.ends_s)

    def listen(self, query_id: str, listener: NodeListener) -> None:
        self.listeners[query_id] = listener

    def forget(self, query_id: str) -> None:
        self.listeners.pop(query_id, None)
        self.graphs.pop(query_id, None)
        self.ends_s.pop(query_id, None)

    def on_query_start(self, query_id: str, graph: Graph, now_s: float) -> None:
        self.graphs[query_id] = graph

    def on_batch_formed(self, engine: str, batch: Batch, now_s: float) -> None:
        self.metrics.batch_size.labels(engine).observe(len(batch.requests))

    def on_node_done(
        self, query_id: str, node: str, status: NodeStatus, timing: NodeTiming
    ) -> None:
        listener = self.listeners.get(query_id)
        graph = self.graphs.get(query_id)
        if listener is None or graph is None or status is not NodeStatus.DONE:
            return
        ends_s = self.ends_s.setdefault(query_id, {})
        if timing.end_s is not None:
            ends_s[node] = timing.end_s
        if timing.engine is None or timing.end_s is None:  # inline ops are not news
            return
        # A chained LLM phase is handed over before its parent ends: its service starts
        # when both it was dispatched and its parents had ended (as session/timing.py).
        start_s = timing.start_s if timing.start_s is not None else timing.ready_s
        began_s = max([start_s, *(ends_s[p] for p in graph.parents(node) if p in ends_s)])
        listener(
            {
                "name": node,
                "op": str(graph.node(node).op),
                "engine": timing.engine,
                "queue_s": round(timing.queue_wait_s, 6),
                "service_s": round(max(0.0, timing.end_s - began_s), 6),
                "batch_size": timing.batch_size,
            }
        )

    def on_query_done(
        self,
        query_id: str,
        result: QueryResult | None,
        error: BaseException | None,
        now_s: float,
    ) -> None:
        self.graphs.pop(query_id, None)
        self.ends_s.pop(query_id, None)
