"""Fake engines, one per ``EngineKind``, for scheduling tests and the simulator.

They implement the engine contract (``engines/base.py``) with plausible values of the
right types and no models: the embedder returns deterministic hash-based unit vectors,
the index does cosine search over what a query ingested, the reranker scores word
overlap, web search makes up sources, the LLM writes deterministic text (a JSON list
when a parser asks for items). Latency comes from the engine's ``LatencyProfile``:
each batch sleeps ``latency_scale * profile.latency_s(...)`` with ``asyncio.sleep``,
so a virtual-time loop runs them in simulated time.

Test knobs, all per node name: ``fail_on(node)`` fails that node's requests with an
``EngineError``; ``block(node)`` returns an ``asyncio.Event`` that holds the node's
requests in flight until it is set (``entered(node)`` is set once one is held, like
Ray's SignalActor); ``set_response(node, text)`` fixes an LLM decode's text.
Records: ``batches`` (every submitted batch, in order), ``aborted`` and ``released``
(query ids, in call order).

Invariants: every task a fake starts is tracked; ``abort`` cancels the query's futures
and any task that only served them; ``close`` cancels all. Per-query state
(collections, LLM calls) is freed by ``release`` and ``abort``; work for a query that
already ended is refused with an ``EngineError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

from primflow.engines.base import (
    Engine,
    EngineError,
    EngineHealth,
    EngineKind,
    EngineRequest,
    Outputs,
)
from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Op
from primflow.prompts import render
from primflow.values import Chunk, Hit, IndexHandle

EMBED_DIM = 32
MAX_NUM_CLOSED_QUERIES = 10_000

T = TypeVar("T")


class FakeEngine(Engine):
    """Shared machinery: batch recording, latency, knobs, per-query cleanup."""

    def __init__(
        self,
        name: str,
        profile: LatencyProfile | None = None,
        *,
        latency_scale: float = 1.0,
        max_concurrent_batches: int = 1,
    ) -> None:
        super().__init__(name, profile)
        self.latency_scale = latency_scale
        self._max_concurrent_batches = max_concurrent_batches
        self.batches: list[list[EngineRequest]] = []
        self.aborted: list[str] = []
        self.released: list[str] = []
        self._failing: dict[tuple[str | None, str], str] = {}
        self._gates: dict[tuple[str | None, str], asyncio.Event] = {}
        self._entered: dict[tuple[str | None, str], asyncio.Event] = {}
        self._responses: dict[str, str] = {}
        self._tasks: dict[asyncio.Task[None], list[asyncio.Future[Outputs]]] = {}
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._closed_queries: dict[str, None] = {}
        self._num_running = 0

    # -- knobs (``query_id=None`` applies to every query) ---------------------------
    def fail_on(
        self, node: str, reason: str = "injected failure", query_id: str | None = None
    ) -> None:
        self._failing[(query_id, node)] = reason

    def block(self, node: str, query_id: str | None = None) -> asyncio.Event:
        """Hold ``node``'s requests in flight until the returned event is set."""
        return self._gates.setdefault((query_id, node), asyncio.Event())

    def entered(self, node: str, query_id: str | None = None) -> asyncio.Event:
        """Set once a request of ``node`` is held by ``block``."""
        return self._entered.setdefault((query_id, node), asyncio.Event())

    def set_response(self, node: str, text: str) -> None:
        self._responses[node] = text

    def _knob(self, knobs: dict[tuple[str | None, str], T], request: EngineRequest) -> T | None:
        found = knobs.get((request.query_id, request.node))
        return found if found is not None else knobs.get((None, request.node))

    @property
    def max_concurrent_batches(self) -> int:
        return self._max_concurrent_batches

    @property
    def batch_keys(self) -> list[list[tuple[str, str]]]:
        """Every batch as (query id, node) pairs: for asserting fusion and order."""
        return [[(r.query_id, r.node) for r in batch] for batch in self.batches]

    @property
    def num_tracked_tasks(self) -> int:
        return len(self._tasks)

    @property
    def num_queries_with_state(self) -> int:
        return len(self._futures_by_query)

    # -- the contract -------------------------------------------------------------
    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        requests = list(batch)
        self.batches.append(requests)
        futures: list[asyncio.Future[Outputs]] = [loop.create_future() for _ in requests]
        for request, future in zip(requests, futures, strict=True):
            if request.query_id in self._closed_queries:
                reason = f"query {request.query_id!r} already ended"
                future.set_exception(EngineError(self.name, request.node, reason))
                continue
            self._track_future(request.query_id, future)
        self._launch(requests, futures)
        return futures

    def abort(self, query_id: str) -> None:
        self.aborted.append(query_id)
        for future in self._futures_by_query.pop(query_id, set()):
            future.cancel()
        for task, futures in list(self._tasks.items()):
            if all(f.done() for f in futures):
                task.cancel()
        self._close_query(query_id)

    def release(self, query_id: str) -> None:
        self.released.append(query_id)
        self._futures_by_query.pop(query_id, None)
        self._close_query(query_id)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def health(self) -> EngineHealth:
        return EngineHealth(
            is_healthy=True,
            num_running=self._num_running,
            load=float(self._num_running),
        )

    # -- serving ------------------------------------------------------------------
    def _launch(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> None:
        """One task per batch: the whole batch takes one profile latency."""
        self._start_task(self._serve(requests, futures), futures)

    async def _serve(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> None:
        self._num_running += len(requests)
        try:
            await asyncio.sleep(self.latency_scale * self.batch_latency_s(requests))
            for request, future in zip(requests, futures, strict=True):
                await self._finish(request, future)
        finally:
            self._num_running -= len(requests)

    async def _finish(self, request: EngineRequest, future: asyncio.Future[Outputs]) -> None:
        """Resolve one request, honouring its gate without holding up the rest."""
        if future.done():
            return
        gate = self._knob(self._gates, request)
        if gate is not None and not gate.is_set():
            self._start_task(self._finish_after(gate, request, future), [future])
            return
        self._resolve(request, future)

    async def _finish_after(
        self, gate: asyncio.Event, request: EngineRequest, future: asyncio.Future[Outputs]
    ) -> None:
        self.entered(request.node).set()
        self.entered(request.node, request.query_id).set()
        await gate.wait()
        if not future.done():
            self._resolve(request, future)

    def _resolve(self, request: EngineRequest, future: asyncio.Future[Outputs]) -> None:
        failure = self._knob(self._failing, request)
        if failure is not None:
            future.set_exception(EngineError(self.name, request.node, failure))
            return
        try:
            outputs = self.compute(request)
        except Exception as exc:  # a bad request fails only itself
            future.set_exception(EngineError(self.name, request.node, repr(exc)))
            return
        future.set_result(outputs)

    def batch_latency_s(self, requests: Sequence[EngineRequest]) -> float:
        num_items = sum(r.num_items for r in requests)
        num_tokens = sum(r.num_tokens for r in requests)
        return self.profile.latency_s(num_items, num_tokens)

    def compute(self, request: EngineRequest) -> Outputs:
        raise NotImplementedError(f"{type(self).__name__} cannot run {request.op}")

    # -- bookkeeping --------------------------------------------------------------
    def _start_task(self, coro: Any, futures: list[asyncio.Future[Outputs]]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[task] = futures
        task.add_done_callback(self._tasks.pop)

    def _track_future(self, query_id: str, future: asyncio.Future[Outputs]) -> None:
        live = self._futures_by_query.setdefault(query_id, set())
        live.add(future)
        future.add_done_callback(live.discard)

    def _close_query(self, query_id: str) -> None:
        self._closed_queries[query_id] = None
        if len(self._closed_queries) > MAX_NUM_CLOSED_QUERIES:
            del self._closed_queries[next(iter(self._closed_queries))]
        self.free_query(query_id)

    def free_query(self, query_id: str) -> None:
        """Drop per-query state; subclasses with state override."""


# -- values ---------------------------------------------------------------------------
def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


@lru_cache(maxsize=65_536)
def fake_embedding(text: str, dim: int = EMBED_DIM) -> np.ndarray:
    """A deterministic unit vector for ``text``; equal texts embed equally."""
    vector = np.random.default_rng(_digest(text)).standard_normal(dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    vector.setflags(write=False)
    return vector


def _as_text(item: Any) -> str:
    if isinstance(item, Chunk):
        return item.text
    if isinstance(item, Hit):
        return item.chunk.text
    return str(item)


def _as_items(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Chunk | Hit):
        return [value]
    return list(value)


class FakeEmbedder(FakeEngine):
    kind = EngineKind.EMBEDDER

    def compute(self, request: EngineRequest) -> Outputs:
        texts = [_as_text(item) for item in _as_items(request.inputs.get(ops.ITEMS))]
        if not texts:
            return {ops.VECTORS: np.zeros((0, EMBED_DIM), dtype=np.float32)}
        return {ops.VECTORS: np.stack([fake_embedding(t) for t in texts])}


@dataclass(slots=True)
class _Collection:
    chunks: list[Chunk] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)


class FakeVectorIndex(FakeEngine):
    """Per-query collections named ``<query id>/<collection>``; ingests append."""

    kind = EngineKind.VECTOR_INDEX

    def __init__(self, name: str, profile: LatencyProfile | None = None, **kwargs: Any) -> None:
        super().__init__(name, profile, **kwargs)
        self.collections: dict[str, _Collection] = {}
        self._collections_by_query: dict[str, set[str]] = {}

    def compute(self, request: EngineRequest) -> Outputs:
        if request.op is Op.VECTOR_INGEST:
            return {ops.INDEX: self._ingest(request)}
        return {ops.HITS: self._search(request)}

    def _ingest(self, request: EngineRequest) -> IndexHandle:
        chunks = list(request.inputs[ops.CHUNKS])
        vectors = np.asarray(request.inputs[ops.VECTORS], dtype=np.float32)
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        name = f"{request.query_id}/{request.params.get('collection', 'default')}"
        collection = self.collections.setdefault(name, _Collection())
        self._collections_by_query.setdefault(request.query_id, set()).add(name)
        collection.chunks.extend(chunks)
        collection.vectors.extend(vectors)
        return IndexHandle(self.name, name, len(collection.chunks))

    def _search(self, request: EngineRequest) -> list[Hit]:
        handle = request.inputs.get(ops.INDEX)
        if not isinstance(handle, IndexHandle) or handle.collection not in self.collections:
            raise ValueError(f"no collection for index {handle!r}")
        collection = self.collections[handle.collection]
        queries = np.atleast_2d(np.asarray(request.inputs[ops.VECTORS], dtype=np.float32))
        top_k = int(request.params.get("top_k", 3))
        if not collection.chunks or len(queries) == 0:
            return []
        scores = queries @ np.stack(collection.vectors).T
        best: dict[int, Hit] = {}
        for row in scores:
            for i in map(int, np.argsort(-row)[:top_k]):
                hit = Hit(collection.chunks[i], float(row[i]))
                if i not in best or hit.score > best[i].score:
                    best[i] = hit
        return sorted(best.values(), key=lambda h: h.score, reverse=True)[:top_k]

    def free_query(self, query_id: str) -> None:
        for name in self._collections_by_query.pop(query_id, set()):
            self.collections.pop(name, None)


class FakeReranker(FakeEngine):
    kind = EngineKind.RERANKER

    def compute(self, request: EngineRequest) -> Outputs:
        query_words = set(str(request.inputs.get(ops.QUERY, "")).lower().split())
        hits = list(request.inputs.get(ops.HITS) or [])
        top_k = int(request.params.get("top_k", len(hits)))

        def score(hit: Hit) -> float:
            words = set(hit.chunk.text.lower().split())
            overlap = len(query_words & words) / (1 + len(query_words))
            return overlap + (_digest(hit.chunk.text) % 1000) / 1e6

        rescored = [Hit(hit.chunk, score(hit)) for hit in hits]
        return {ops.HITS: sorted(rescored, key=lambda h: h.score, reverse=True)[:top_k]}


class FakeWebSearch(FakeEngine):
    kind = EngineKind.WEB_SEARCH

    def compute(self, request: EngineRequest) -> Outputs:
        top_k = int(request.params.get("top_k", 3))
        hits: list[Hit] = []
        for query in _as_items(request.inputs.get(ops.QUERIES)):
            key = _digest(str(query))
            for rank in range(top_k):
                chunk = Chunk(
                    f"{query}: result {rank + 1}", f"https://search.example/{key}/{rank}", rank
                )
                hits.append(Hit(chunk, 1.0 / (rank + 1)))
        return {ops.HITS: sorted(hits, key=lambda h: h.score, reverse=True)[:top_k]}


# -- LLM ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FakeLLMState:
    """The KV state handed from phase to phase: here, just the prompt so far."""

    llm_request_id: str
    prompt: str


@dataclass(slots=True)
class _Call:
    prompt: str = ""
    tail: asyncio.Future[Outputs] | None = None  # the last phase submitted


PREFILL_OPS = frozenset({Op.LLM_PREFILL, Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL})


class FakeLLM(FakeEngine):
    """Continuous batching, faked: each request runs on its own, after the previous
    phase of its call (same ``llm_request_id``) has finished, so a pre-scheduled phase
    waits here for its predecessor, as on a real engine."""

    kind = EngineKind.LLM

    def __init__(
        self,
        name: str,
        profile: LatencyProfile | None = None,
        *,
        max_num_calls: int = 64,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_concurrent_batches", max_num_calls)
        super().__init__(name, profile, **kwargs)
        self.max_num_calls = max_num_calls
        self._calls: dict[str, _Call] = {}
        self._calls_by_query: dict[str, list[str]] = {}

    def health(self) -> EngineHealth:
        return EngineHealth(
            is_healthy=True,
            num_running=self._num_running,
            load=len(self._calls) / self.max_num_calls,
        )

    def _launch(
        self, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> None:
        for request, future in zip(requests, futures, strict=True):
            call = self._call(request)
            previous, call.tail = call.tail, future
            self._start_task(self._serve_one(request, future, previous), [future])

    async def _serve_one(
        self,
        request: EngineRequest,
        future: asyncio.Future[Outputs],
        previous: asyncio.Future[Outputs] | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None:
                if not future.done():
                    reason = "the previous phase of this call did not finish"
                    future.set_exception(EngineError(self.name, request.node, reason))
                return
        self._num_running += 1
        try:
            await asyncio.sleep(self.latency_scale * self.request_latency_s(request))
        finally:
            self._num_running -= 1
        await self._finish(request, future)

    def request_latency_s(self, request: EngineRequest) -> float:
        if request.op in PREFILL_OPS:
            return self.profile.latency_s(1, request.num_tokens)
        return self.profile.latency_s(1, 0, _num_output_tokens(request))

    def compute(self, request: EngineRequest) -> Outputs:
        call = self._call(request)
        call_id = str(request.llm_request_id)
        if request.op in PREFILL_OPS:
            values = {k: v for k, v in request.inputs.items() if k != ops.STATE}
            call.prompt += render(str(request.params.get("template", "")), values)
            return {ops.STATE: FakeLLMState(call_id, call.prompt)}
        if request.op is Op.LLM_PARTIAL_DECODE:
            index = int(request.params.get("index", 0))
            item = _fake_items(call.prompt, index + 1)[index]
            return {ops.ITEMS: [item], ops.STATE: FakeLLMState(call_id, call.prompt)}
        return self._decode(request, call.prompt)

    def _decode(self, request: EngineRequest, prompt: str) -> Outputs:
        num_items = int(request.params.get("num_items", 0) or 0)
        parser = request.params.get("parser")
        items = _fake_items(prompt, num_items) if parser else []
        text = self._responses.get(request.node)
        if text is None:
            text = _format_items(items, parser) if parser else _fake_text(prompt)
        if request.on_text is not None:
            for piece in text.split(" "):
                request.on_text(piece + " ")
        outputs: Outputs = {ops.TEXT: text}
        if parser:
            outputs[ops.ITEMS] = items
        return outputs

    def _call(self, request: EngineRequest) -> _Call:
        call_id = request.llm_request_id or f"{request.query_id}/{request.node}"
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call()
            self._calls_by_query.setdefault(request.query_id, []).append(call_id)
        return call

    def free_query(self, query_id: str) -> None:
        for call_id in self._calls_by_query.pop(query_id, []):
            self._calls.pop(call_id, None)


def _num_output_tokens(request: EngineRequest) -> int:
    max_tokens = int(request.params.get("max_tokens", 64))
    if request.op is Op.LLM_PARTIAL_DECODE:
        return max(1, max_tokens // max(1, int(request.params.get("num_items", 1))))
    return max_tokens


def _fake_text(prompt: str) -> str:
    return f"Answer {_digest(prompt) % 100_000:05d}: a deterministic fake reply."


def _fake_items(prompt: str, num_items: int) -> list[str]:
    key = _digest(prompt) % 100_000
    return [f"item {i + 1} of {key:05d}" for i in range(num_items)]


def _format_items(items: list[str], parser: Any) -> str:
    if parser == ops.DecodeParser.JSON_OBJECT:
        return json.dumps({f"item_{i + 1}": item for i, item in enumerate(items)})
    if parser == ops.DecodeParser.LINES:
        return "\n".join(f"{i + 1}. {item}" for i, item in enumerate(items))
    return json.dumps(items)


FAKES_BY_KIND: dict[EngineKind, type[FakeEngine]] = {
    EngineKind.LLM: FakeLLM,
    EngineKind.EMBEDDER: FakeEmbedder,
    EngineKind.VECTOR_INDEX: FakeVectorIndex,
    EngineKind.RERANKER: FakeReranker,
    EngineKind.WEB_SEARCH: FakeWebSearch,
}


def make_fake_engines(
    names: dict[str, EngineKind], *, latency_scale: float = 1.0
) -> dict[str, FakeEngine]:
    """One fake per named engine, e.g. ``{"llm": EngineKind.LLM, ...}``."""
    return {
        name: FAKES_BY_KIND[kind](name, latency_scale=latency_scale) for name, kind in names.items()
    }
