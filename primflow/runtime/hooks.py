"""Hooks: how tracing, metrics and tests watch a runtime without touching its loop.

A hook overrides any of the methods below; the runtime calls them synchronously on
the event loop at each event, so they must be quick and must not raise (an exception
in a hook is a bug in the hook and propagates). ``RecordingHook`` keeps every event
as a tuple, for tests.

A hook with ``sees_baselines`` also watches the baseline schemes' runs
(``baselines/executor.py``): their query start and end, node ends, a one-request batch
per engine call (that is how a baseline calls its engines) and, around the primitives
of each template component, ``on_module_start`` / ``on_module_done``, which only
baselines report (primflow runs no component as a unit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from primflow.runtime.query_state import NodeStatus, NodeTiming, QueryResult

if TYPE_CHECKING:
    from primflow.engines.scheduler import Batch
    from primflow.graph.ir import Graph


class Hook:
    sees_baselines: bool = False

    def on_query_start(self, query_id: str, graph: Graph, now_s: float) -> None:
        """A query was submitted; its INPUT nodes are about to run."""

    def on_node_ready(self, query_id: str, node: str, now_s: float) -> None:
        """All inputs of ``node`` are present (or, for a chained LLM phase, coming)."""

    def on_batch_formed(self, engine: str, batch: Batch, now_s: float) -> None:
        """The engine scheduler formed ``batch``; it is being submitted."""

    def on_graph_grown(self, query_id: str, graph: Graph, now_s: float) -> None:
        """The query's graph grew (a loop's round, an agent's step): ``graph`` is all of
        it now, so nodes of the new part are found there."""

    def on_node_done(
        self, query_id: str, node: str, status: NodeStatus, timing: NodeTiming
    ) -> None:
        """``node`` ended: DONE, SKIPPED, FAILED or CANCELLED."""

    def on_query_done(
        self,
        query_id: str,
        result: QueryResult | None,
        error: BaseException | None,
        now_s: float,
    ) -> None:
        """The query ended with ``result`` or ``error``."""

    def on_module_start(self, query_id: str, scheme: str, module: str, now_s: float) -> None:
        """Baseline ``scheme`` started the first primitive of component ``module``."""

    def on_module_done(self, query_id: str, module: str, now_s: float) -> None:
        """The last primitive of component ``module`` ended (baselines only)."""


class RecordingHook(Hook):
    """Records events as ``(kind, ...)`` tuples in call order."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def on_query_start(self, query_id: str, graph: Graph, now_s: float) -> None:
        self.events.append(("query_start", query_id, now_s))

    def on_node_ready(self, query_id: str, node: str, now_s: float) -> None:
        self.events.append(("node_ready", query_id, node, now_s))

    def on_batch_formed(self, engine: str, batch: Batch, now_s: float) -> None:
        keys = tuple((r.query_id, r.node) for r in batch.requests)
        self.events.append(("batch", engine, keys, now_s))

    def on_node_done(
        self, query_id: str, node: str, status: NodeStatus, timing: NodeTiming
    ) -> None:
        self.events.append(("node_done", query_id, node, status))

    def on_query_done(
        self,
        query_id: str,
        result: QueryResult | None,
        error: BaseException | None,
        now_s: float,
    ) -> None:
        self.events.append(("query_done", query_id, type(error).__name__ if error else None))

    def of_kind(self, kind: str) -> list[tuple[object, ...]]:
        return [e for e in self.events if e[0] == kind]
