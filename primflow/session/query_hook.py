"""What the session watches while a query runs on the runtime: which primitives ended
(for the query's event stream) and how many prompt tokens each prefill phase took (for
the uncontended bound), plus which decodes stream the answer's text.

Invariants: the hook keeps state only for queries registered with :meth:`watch` and
drops it in :meth:`forget`, which the session calls when the run ends, however it ends.
"""

from __future__ import annotations

from collections.abc import Callable

from primflow.engines.scheduler import Batch
from primflow.graph.ir import INLINE_OPS, LLM_OPS, EdgeKind, Graph, Op
from primflow.runtime import Hook, NodeStatus, NodeTiming
from primflow.session.solo_bound import PREFILL_PHASES

OnNodeDone = Callable[[str, NodeTiming], None]
OnText = Callable[[str], None]


class SessionHook(Hook):
    """Routes runtime events to the session's per-query recorders."""

    def __init__(self) -> None:
        self._node_done: dict[str, OnNodeDone] = {}
        self._num_tokens: dict[str, dict[str, int]] = {}  # query -> prefill phase -> tokens
        # Decodes of rounds a loop appended, which the run's ``on_text`` could not name.
        self._streams: dict[tuple[str, str], OnText] = {}

    def watch(self, query_id: str, on_node_done: OnNodeDone, num_tokens: dict[str, int]) -> None:
        self._node_done[query_id] = on_node_done
        self._num_tokens[query_id] = num_tokens

    def stream(self, query_id: str, node: str, on_text: OnText) -> None:
        """Stream ``node``'s text (a decode of a grown round) to ``on_text``."""
        self._streams[(query_id, node)] = on_text

    def forget(self, query_id: str) -> None:
        self._node_done.pop(query_id, None)
        self._num_tokens.pop(query_id, None)
        for key in [k for k in self._streams if k[0] == query_id]:
            del self._streams[key]

    def on_batch_formed(self, engine: str, batch: Batch, now_s: float) -> None:
        # The worker calls this before submitting, so the engine sees the callback.
        for request in batch.requests:
            stream = self._streams.get((request.query_id, request.node))
            if stream is not None:
                request.on_text = stream
            tokens = self._num_tokens.get(request.query_id)
            if tokens is not None and request.op in PREFILL_PHASES:
                tokens[request.node] = request.num_tokens

    def on_node_done(
        self, query_id: str, node: str, status: NodeStatus, timing: NodeTiming
    ) -> None:
        callback = self._node_done.get(query_id)
        if callback is not None and status is NodeStatus.DONE:
            callback(node, timing)


def answer_decode_nodes(graph: Graph, output_key: str = "answer") -> frozenset[str]:
    """The LLM decodes whose text becomes the ``output_key`` output (walking back
    through inline ops such as a CONDITION join)."""
    found: set[str] = set()
    frontier = [n.name for n in graph.nodes_with_op(Op.OUTPUT) if n.params.get("key") == output_key]
    seen: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        for edge in graph.in_edges(name):
            if edge.kind is not EdgeKind.DATA:
                continue
            parent = graph.node(edge.src)
            if parent.op in (Op.LLM_DECODE, Op.LLM_PARTIAL_DECODE):
                found.add(parent.name)
            elif parent.op in INLINE_OPS and parent.op is not Op.INPUT:
                frontier.append(parent.name)
            elif parent.op not in LLM_OPS:
                continue
    return frozenset(found)
