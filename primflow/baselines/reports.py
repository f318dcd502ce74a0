"""What a baseline run tells the hooks that watch baselines (``Hook.sees_baselines``).

``RunReports`` turns one query's module-by-module run into hook events, so tracing
shows a baseline next to primflow: the query's start (first part), its graph's growth
(each later part) and end (last part, or a failure), one one-request batch per engine
call (a baseline calls its engines one request at a time), each node's end, and each
template component's first start and last end (``on_module_start`` /
``on_module_done``; components with no engine primitive, such as a template input,
report none). Times are ``time.perf_counter`` seconds, the executor's clock. With no
such hook every method returns at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from primflow.engines.base import EngineRequest
from primflow.engines.scheduler import Batch
from primflow.graph.ir import INLINE_OPS, Graph, Node
from primflow.runtime.hooks import Hook
from primflow.runtime.query_state import NodeStatus, NodeTiming, QueryResult


def module_of(node: Node) -> str:
    """The component a node came from (a template input is a module of its own)."""
    return node.origin or node.name


class RunReports:
    """Hook events of one part of one query's baseline run (see the module docstring)."""

    def __init__(self, hooks: Sequence[Hook], scheme: str, query_id: str, graph: Graph) -> None:
        self.hooks = [h for h in hooks if h.sees_baselines]
        self.scheme = scheme
        self.query_id = query_id
        # Engine primitives left per module; a module with none reports no events.
        self._num_left: Counter[str] = Counter(
            module_of(n) for n in graph if n.op not in INLINE_OPS
        )
        self._started: set[str] = set()

    def query_start(self, graph: Graph, now_s: float) -> None:
        for hook in self.hooks:
            hook.on_query_start(self.query_id, graph, now_s)

    def graph_grown(self, graph: Graph, now_s: float) -> None:
        for hook in self.hooks:
            hook.on_graph_grown(self.query_id, graph, now_s)

    def engine_call(self, node: Node, request: EngineRequest, now_s: float) -> None:
        if not self.hooks or node.engine is None:
            return
        module = module_of(node)
        if module not in self._started:
            self._started.add(module)
            for hook in self.hooks:
                hook.on_module_start(self.query_id, self.scheme, module, now_s)
        batch = Batch([request], 0, now_s, request.num_items, request.num_tokens)
        for hook in self.hooks:
            hook.on_batch_formed(node.engine, batch, now_s)

    def node_done(self, node: Node, status: NodeStatus, timing: NodeTiming) -> None:
        if not self.hooks:
            return
        for hook in self.hooks:
            hook.on_node_done(self.query_id, node.name, status, timing)
        module = module_of(node)
        if node.op in INLINE_OPS or module not in self._started:
            return
        self._num_left[module] -= 1
        if self._num_left[module] == 0 and timing.end_s is not None:
            for hook in self.hooks:
                hook.on_module_done(self.query_id, module, timing.end_s)

    def query_done(
        self, result: QueryResult | None, error: BaseException | None, now_s: float
    ) -> None:
        for module in sorted(self._started):  # modules a failure cut short
            if self._num_left[module] > 0:
                for hook in self.hooks:
                    hook.on_module_done(self.query_id, module, now_s)
        for hook in self.hooks:
            hook.on_query_done(self.query_id, result, error, now_s)
