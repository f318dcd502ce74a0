"""The engine contract: what every engine (real, fake, remote) implements.

The graph scheduler turns a ready node into an :class:`EngineRequest`; an engine
scheduler groups requests into batches; the engine runs a batch and resolves one
future per request. Invariants:

- ``submit`` never blocks the event loop: CPU work runs on the engine's own thread(s).
- Each future resolves with the node's outputs (output port name -> value) when the
  work has really finished, or fails with :class:`EngineError` naming the engine and
  the node. A failure of one request need not fail the others in its batch.
- ``release(query_id)`` is called once when a query ends normally; per-query state
  (collections, KV sequences) must not outlive it.
- ``abort(query_id)`` drops that query's queued work and frees its state (KV
  sequences, per-query collections) at once; its futures are cancelled.
- LLM phases are pre-scheduled: a full prefill or a decode may arrive before the
  phase it follows has finished, with no ``state`` in its inputs. The engine links it
  to the earlier phase by ``llm_request_id`` and resolves its future only after the
  phase has really run.
- ``profile`` predicts latency; passes and schedulers read it, never constants.
- An LLM engine may add ``usage`` (``USAGE``, a :class:`TokenUsage`) to a phase's
  outputs: the tokens that phase really prefilled and generated, by the engine's own
  count. It is no port: the runtime copies it to the node's timing (for spans and
  reports), never to a consumer.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Op

Outputs = dict[str, Any]
# The optional outputs key of an LLM phase's token counts (a TokenUsage), not a port.
USAGE = "usage"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens one LLM phase really processed: prompt tokens it prefilled (the phase's
    part of the prompt) and tokens it generated (a partial decode: those since the
    previous item). Summed over a call's phases they give the call's totals.

    Examples:
        >>> from primflow.engines.base import TokenUsage
        >>> TokenUsage(num_input_tokens=12, num_output_tokens=0) + TokenUsage(0, 5)
        TokenUsage(num_input_tokens=12, num_output_tokens=5)
    """

    num_input_tokens: int = 0
    num_output_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.num_input_tokens + other.num_input_tokens,
            self.num_output_tokens + other.num_output_tokens,
        )


class EngineKind(StrEnum):
    """What an engine serves; each kind runs a fixed set of ops (``OPS_BY_KIND``).

    Examples:
        >>> from primflow import EngineKind
        >>> from primflow.engines.base import OPS_BY_KIND
        >>> EngineKind("embedder") is EngineKind.EMBEDDER
        True
        >>> sorted(str(op) for op in OPS_BY_KIND[EngineKind.VECTOR_INDEX])
        ['vector_ingest', 'vector_search']
    """

    LLM = "llm"
    EMBEDDER = "embedder"
    VECTOR_INDEX = "vector_index"
    RERANKER = "reranker"
    WEB_SEARCH = "web_search"
    FUNCTION = "function"  # users' Python functions (primflow.function)


# Which ops each kind of engine runs.
OPS_BY_KIND: dict[EngineKind, frozenset[Op]] = {
    EngineKind.LLM: frozenset(
        {
            Op.LLM_PREFILL,
            Op.LLM_PARTIAL_PREFILL,
            Op.LLM_FULL_PREFILL,
            Op.LLM_DECODE,
            Op.LLM_PARTIAL_DECODE,
        }
    ),
    EngineKind.EMBEDDER: frozenset({Op.EMBED}),
    EngineKind.VECTOR_INDEX: frozenset({Op.VECTOR_INGEST, Op.VECTOR_SEARCH}),
    EngineKind.RERANKER: frozenset({Op.RERANK}),
    EngineKind.WEB_SEARCH: frozenset({Op.WEB_SEARCH}),
    EngineKind.FUNCTION: frozenset({Op.FUNCTION}),
}


@dataclass(eq=False, slots=True)
class EngineRequest:
    """One primitive of one query, ready to run (all its inputs are present).

    ``num_items`` and ``num_tokens`` size the work for batch budgets and profiles.
    ``llm_request_id`` is unique per (query, LLM call) and shared by that call's
    phases. ``priority`` is the node's upward rank (remaining critical path, in
    seconds; higher runs first) and ``query_start_s`` when its query was submitted (on
    the runtime's clock); the graph scheduler sets both for the batching policies. A
    client that does not schedule by query (the baselines, a plain API caller) leaves
    ``query_start_s`` None: engines then order its requests by arrival alone.
    ``query_priority`` is the client's priority of the whole query (higher first, 0 by
    default): every policy serves a higher one before a lower one, whatever else.
    ``policy`` names the batching policy of the engine scheduler that queued it, so an
    engine that orders work itself (the LLM's step planner) applies the same one.
    ``on_text`` receives decoded text as it streams (LLM_DECODE only).

    Examples:
        >>> import asyncio
        >>> from primflow import EngineRequest, Op
        >>> from primflow.testing.fakes import FakeEmbedder
        >>> request = EngineRequest("q0", "embed", Op.EMBED, inputs={"items": ["hi"]}, params={})
        >>> request.key
        'q0/embed'
        >>> async def main():
        ...     (future,) = FakeEmbedder("embedder", latency_scale=0.0).submit([request])
        ...     return await future
        >>> asyncio.run(main())["vectors"].shape
        (1, 32)
    """

    query_id: str
    node: str
    op: Op
    inputs: Mapping[str, Any]
    params: Mapping[str, Any]
    num_items: int = 1
    num_tokens: int = 0
    llm_request_id: str | None = None
    depth: int = 0
    priority: float = 0.0
    query_start_s: float | None = None
    query_priority: int = 0
    arrival_s: float = 0.0
    policy: str | None = None
    deadline_s: float | None = None
    on_text: Callable[[str], None] | None = None
    future: asyncio.Future[Outputs] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return f"{self.query_id}/{self.node}"


class EngineError(RuntimeError):
    """An engine failed a request. The message names the engine and the node.

    Examples:
        >>> from primflow import EngineError
        >>> error = EngineError("embedder", "embed_docs", "items[2] must be str, got int")
        >>> str(error)
        "engine 'embedder' failed node 'embed_docs': items[2] must be str, got int"
        >>> error.engine, error.node, error.reason
        ('embedder', 'embed_docs', 'items[2] must be str, got int')
    """

    def __init__(self, engine: str, node: str, reason: str) -> None:
        super().__init__(f"engine {engine!r} failed node {node!r}: {reason}")
        self.engine = engine
        self.node = node
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EngineHealth:
    is_healthy: bool
    detail: str = ""
    num_queued: int = 0
    num_running: int = 0
    load: float = 0.0  # queue length, or KV occupancy in [0, 1] for LLM engines


class Engine(ABC):
    """Base class of all engines. Subclasses implement :meth:`submit`.

    An engine whose work is synchronous CPU code subclasses :class:`ThreadedEngine`
    instead, which runs it off the event loop; this base suits engines that are already
    asynchronous (a remote service, or answers that cost nothing, as here).

    Examples:
        >>> import asyncio
        >>> from primflow import Engine, EngineKind, EngineRequest, Op
        >>> from primflow.values import Chunk, Hit
        >>> class DictSearch(Engine):
        ...     kind = EngineKind.WEB_SEARCH
        ...     def __init__(self, pages):
        ...         super().__init__("web_search")
        ...         self.pages = pages
        ...     def submit(self, batch):
        ...         futures = []
        ...         for request in batch:
        ...             found = [q for q in request.inputs["queries"] if q in self.pages]
        ...             hits = [Hit(Chunk(self.pages[q], q, 0), 1.0) for q in found]
        ...             futures.append(asyncio.get_running_loop().create_future())
        ...             futures[-1].set_result({"hits": hits})
        ...         return futures
        >>> async def main():
        ...     engine = DictSearch({"hnsw": "HNSW is a graph index."})
        ...     inputs, params = {"queries": ["hnsw"]}, {"top_k": 1}
        ...     request = EngineRequest("q0", "web", Op.WEB_SEARCH, inputs, params)
        ...     (future,) = engine.submit([request])
        ...     return await future
        >>> asyncio.run(main())["hits"][0].chunk.text
        'HNSW is a graph index.'
    """

    kind: EngineKind

    def __init__(self, name: str, profile: LatencyProfile | None = None) -> None:
        self.name = name
        self.profile = profile or LatencyProfile.default_for(self.kind)

    @property
    def max_batch_size(self) -> int:
        """Largest number of requests the engine accepts in one batch."""
        return self.profile.max_batch_size

    @property
    def max_concurrent_batches(self) -> int:
        """How many batches may be in flight at once (LLM engines: many)."""
        return 1

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load models, open connections. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything. Idempotent."""

    @abstractmethod
    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        """Start running ``batch``; return one future per request, in order."""

    def abort(self, query_id: str) -> None:  # noqa: B027 - engines without state keep this
        """Drop the query's queued work and free its state."""

    def release(self, query_id: str) -> None:  # noqa: B027
        """The query finished: free its per-query state (collections, KV prefixes)."""

    def health(self) -> EngineHealth:
        return EngineHealth(is_healthy=True)
