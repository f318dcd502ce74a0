"""Per-query run state, kept outside the IR: node status, port values, timings.

One ``QueryState`` per running query. Invariants:

- A value is stored per (node, output port) only while a consumer still has to read
  it: each port starts with its number of reading edges, every ``take`` counts one
  down, and the value is dropped at zero. A value nobody reads is never stored. A
  consumer that starts before its producer finished (a pre-scheduled LLM phase) counts
  down early, so the late value is dropped on arrival if no one else needs it.
- ``SKIPPED`` stands for the value of a port on an untaken CONDITION branch.
- Status moves PENDING -> READY -> RUNNING -> DONE, or to SKIPPED / FAILED / CANCELLED;
  the last four are terminal and counted once in ``num_unfinished``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from primflow.engines.base import TokenUsage
    from primflow.graph.ir import Graph


class NodeStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {NodeStatus.DONE, NodeStatus.SKIPPED, NodeStatus.FAILED, NodeStatus.CANCELLED}
)


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


SKIPPED: Final = _Marker("SKIPPED")  # the value of a port on an untaken branch
MISSING: Final = _Marker("MISSING")  # not produced yet (read by a pre-scheduled phase)

PortKey = tuple[str, str]  # (node, output port)


@dataclass(slots=True)
class NodeTiming:
    """When a node became ready, was handed to its engine, and finished (clock seconds).

    A chained LLM phase is handed over before its predecessor finished, so its
    ``exec_s`` includes the wait for that predecessor inside the engine. ``usage`` is
    what an LLM phase's engine counted (``engines/base.py``), None for other nodes and
    for engines that count nothing.
    """

    ready_s: float
    start_s: float | None = None
    end_s: float | None = None
    engine: str | None = None
    batch_size: int = 0
    usage: TokenUsage | None = None

    @property
    def queue_wait_s(self) -> float:
        return 0.0 if self.start_s is None else self.start_s - self.ready_s

    @property
    def exec_s(self) -> float:
        if self.start_s is None or self.end_s is None:
            return 0.0
        return self.end_s - self.start_s


@dataclass(slots=True)
class QueryResult:
    """What a finished query produced: its outputs by key, its latency (submit to last
    output) and, per node, when it became ready, started and ended.

    Examples:
        >>> import asyncio
        >>> from primflow import Embed, EngineKind, Query, Runtime, build_template, lower_query
        >>> from primflow.testing.fakes import make_fake_engines
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> template = build_template("embed_question", embed, outputs={"vectors": "vectors"})
        >>> lowered = lower_query(template, Query("What is HNSW?"))
        >>> def fake_embedder():
        ...     return make_fake_engines({"embedder": EngineKind.EMBEDDER}, latency_scale=0.0)
        >>> async def main():
        ...     async with Runtime(fake_embedder()) as runtime:
        ...         return await runtime.run(lowered.graph, lowered.inputs, query_id="q1")
        >>> result = asyncio.run(main())
        >>> result.query_id, result.outputs["vectors"].shape, sorted(result.timings)
        ('q1', (1, 32), ['embed', 'input.question_list', 'output.vectors'])
        >>> result.latency_s >= 0.0
        True
    """

    query_id: str
    outputs: dict[str, Any]  # OUTPUT node params["key"] -> value
    latency_s: float
    timings: dict[str, NodeTiming] = field(default_factory=dict)
    # Constrained decisions (decode node -> the choice it made), e.g. a judge's "no".
    decisions: dict[str, str] = field(default_factory=dict)
    # The scores a calibrated choice decided by (decode node -> answer -> logprob, prior,
    # bias, calibrated); only for decisions made by scoring.
    decision_scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # A graph that grew while it ran (rounds of a loop, an agent's steps): the graph as
    # it ended, and one label per appended delta; None and [] for a static graph.
    graph: Graph | None = None
    rounds: list[str] = field(default_factory=list)


class QueryState:
    def __init__(
        self,
        query_id: str,
        nodes: Iterable[str],
        num_readers: Mapping[PortKey, int],
        *,
        is_retaining: bool = False,
    ) -> None:
        """``is_retaining``: keep every value until the query ends (a growing graph's
        later rounds may read any of them), instead of releasing after the last reader."""
        self.query_id = query_id
        self.status: dict[str, NodeStatus] = dict.fromkeys(nodes, NodeStatus.PENDING)
        self.timings: dict[str, NodeTiming] = {}
        self.outputs: dict[str, Any] = {}
        self.num_unfinished = len(self.status)
        self._values: dict[PortKey, Any] = {}
        self._num_readers: dict[PortKey, int] = dict(num_readers)
        self.is_retaining = is_retaining

    def add_nodes(self, nodes: Iterable[str]) -> None:
        """Nodes appended to a growing graph, PENDING."""
        for node in nodes:
            if node in self.status:
                raise RuntimeError(f"node {node!r} is already in the query")
            self.status[node] = NodeStatus.PENDING
            self.num_unfinished += 1

    def put(self, node: str, port: str, value: Any) -> None:
        key = (node, port)
        if self.is_retaining or self._num_readers.get(key, 0) > 0:
            self._values[key] = value

    def take(self, node: str, port: str) -> Any:
        """Read a value for one consuming edge; the last reader releases it."""
        key = (node, port)
        if self.is_retaining:
            return self._values.get(key, MISSING)
        num_left = self._num_readers[key] - 1
        self._num_readers[key] = num_left
        if num_left > 0:
            return self._values.get(key, MISSING)
        return self._values.pop(key, MISSING)

    def set_status(self, node: str, status: NodeStatus) -> None:
        old = self.status[node]
        if old.is_terminal:
            raise RuntimeError(f"node {node!r} is already {old}; cannot become {status}")
        self.status[node] = status
        if status.is_terminal:
            self.num_unfinished -= 1

    def clear_values(self) -> None:
        self._values.clear()

    @property
    def num_values(self) -> int:
        return len(self._values)

    def has_value(self, node: str, port: str) -> bool:
        return (node, port) in self._values

    def nodes_with(self, *statuses: NodeStatus) -> list[str]:
        return [n for n, s in self.status.items() if s in statuses]
