"""``LlamaEngine``: the LLM engine as the runtime sees it (the event-loop side).

Runs prefill, partial/full prefill, decode and partial decode phases of many requests
with continuous batching on one llama.cpp context (see core.py for the engine thread).
Invariants:

- ``submit`` never blocks: it renders prompts, creates one future per request and
  hands the phases to the process's llama thread (thread.py), shared by every
  LlamaEngine of the process (a second thread calling llama.cpp slows it); the model
  loads on that thread at ``start`` (or at the first submit).
- ``abort(query_id)`` cancels the query's futures at once; the engine thread frees its
  KV before its next step. ``release`` frees what a finished query left behind.
- ``health().load`` is KV occupancy in [0, 1].
- The engine scheduler hands every ready phase over at once (``max_concurrent_batches``);
  the step planner decides each step, in the order of the batching policy each request
  names (``EngineRequest.policy``), with cross-query batching by the step-cost model
  of ``profile`` (default: ``LlamaConfig.default_profile``, by model option).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from primflow.engines.base import (
    OPS_BY_KIND,
    Engine,
    EngineError,
    EngineHealth,
    EngineKind,
    EngineRequest,
    Outputs,
)
from primflow.engines.llm import commands as cmd
from primflow.engines.llm.config import LlamaConfig
from primflow.engines.llm.core import EngineCore
from primflow.engines.llm.step_groups import check_cross_query_batching
from primflow.engines.llm.thread import LlamaThread, shared_thread
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import PREFILL_OPS
from primflow.graph.ops import placeholders
from primflow.prompts import render

# Aborted query ids are remembered to refuse their late work; old ones are forgotten.
MAX_NUM_ABORTED_QUERIES = 10_000


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: str  # the file llama.cpp loaded (a converted copy with a quantization option)
    chat_template: str | None  # the GGUF's tokenizer.chat_template


class LlamaEngine(Engine):
    kind = EngineKind.LLM

    def __init__(
        self,
        name: str = "llm",
        model_path: str | None = None,
        *,
        config: LlamaConfig | None = None,
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
        **settings: Any,
    ) -> None:
        """``settings`` override fields of ``config`` (``n_ctx=2048``, ``n_threads=1``...)."""
        config = config or LlamaConfig()
        if model_path is not None:
            settings["model_path"] = model_path
        self.config = replace(config, **settings)
        super().__init__(name, profile or self.config.default_profile())
        self._core = EngineCore(name, self.config, budget, self.profile)
        self._thread = LlamaThread(name) if self.config.dedicated_thread else shared_thread()
        self._is_started = False
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._aborted: OrderedDict[str, None] = OrderedDict()
        self._is_closed = False

    @property
    def max_concurrent_batches(self) -> int:
        # Every ready request is handed over at once; the step planner orders the work
        # into steps by the request's batching policy (scheduler.py, step_order.py).
        return 1024

    async def start(self) -> None:
        self._ensure_thread()
        try:
            await asyncio.wrap_future(self._core.ready)
        except Exception as err:
            raise EngineError(self.name, "<start>", str(err)) from err

    async def close(self) -> None:
        if self._is_closed:
            return
        self._is_closed = True
        if self._is_started:
            self._thread.post(self._core, cmd.Stop())
            await asyncio.wrap_future(self._core.stopped)

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        self._ensure_thread()
        futures = []
        for request in batch:
            future: asyncio.Future[Outputs] = loop.create_future()
            request.future = future
            futures.append(future)
            if request.query_id in self._aborted:  # late work of an aborted query
                future.cancel()
                continue
            self._track(request.query_id, future)
            try:
                phase = self._phase(request, future)
            except (ValueError, KeyError) as err:
                reason = err.args[0] if err.args else str(err)
                future.set_exception(EngineError(self.name, request.node, str(reason)))
                continue
            self._thread.post(self._core, phase)
        return futures

    def abort(self, query_id: str) -> None:
        self._aborted[query_id] = None
        while len(self._aborted) > MAX_NUM_ABORTED_QUERIES:
            self._aborted.popitem(last=False)
        for future in self._futures_by_query.pop(query_id, set()):
            future.cancel()
        self._thread.post(self._core, cmd.Abort(query_id))

    def release(self, query_id: str) -> None:
        self._futures_by_query.pop(query_id, None)
        self._thread.post(self._core, cmd.Release(query_id))

    def set_num_threads(self, num_threads: int) -> None:
        """Fix the thread count (a core budget's share); applies from the next step."""
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self._ensure_thread()
        self._thread.post(self._core, cmd.SetThreads(num_threads))

    def set_cross_query_batching(self, mode: str) -> None:
        """Switch cross-query batching (``cost``, ``off``, ``on``; step_groups.py) from the
        next step on, e.g. to compare the modes side by side on one loaded engine."""
        check_cross_query_batching(mode)
        self._ensure_thread()
        self._thread.post(self._core, cmd.SetCrossQueryBatching(mode))

    def health(self) -> EngineHealth:
        snap = self._core.snapshot
        is_alive = self._thread.is_alive()
        return EngineHealth(
            is_healthy=not snap.error and is_alive and not self._is_closed,
            detail=snap.error or f"{snap.num_used_cells}/{snap.kv_capacity} KV cells",
            num_queued=snap.num_waiting,
            num_running=snap.num_running,
            load=snap.num_used_cells / max(snap.kv_capacity, 1),
        )

    async def kv_positions(self) -> dict[int, int]:
        """Largest KV position of every sequence slot (-1 = empty), read by llama.cpp itself
        on the engine thread."""
        self._ensure_thread()
        future: concurrent.futures.Future[dict[int, int]] = concurrent.futures.Future()
        n_seq_max = self.config.n_seq_max

        def read(core: EngineCore) -> dict[int, int]:
            return {slot: core.runner.max_pos(slot) for slot in range(n_seq_max)}

        self._thread.post(self._core, cmd.Probe(read, future))
        return await asyncio.wrap_future(future)

    async def model_info(self) -> ModelInfo:
        """The model file this engine loaded and the chat template read from it (None:
        the file has none, and prompts are plain completions)."""
        self._ensure_thread()
        future: concurrent.futures.Future[ModelInfo] = concurrent.futures.Future()

        def read(core: EngineCore) -> ModelInfo:
            return ModelInfo(core.model.path, core.model.chat.source)

        self._thread.post(self._core, cmd.Probe(read, future))
        return await asyncio.wrap_future(future)

    async def thread_ident(self) -> int:
        """The OS thread that makes this engine's llama calls (shared by the process's
        engines unless ``dedicated_thread``)."""
        self._ensure_thread()
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread.post(self._core, cmd.Probe(lambda _: threading.get_ident(), future))
        return await asyncio.wrap_future(future)

    def stats(self) -> dict[str, int]:
        """Counters since start: prefilled / reused / decoded tokens, prefix hits, steps,
        calibrated choices' cached priors, filler tokens of padded prompt steps."""
        snap = self._core.snapshot
        return {
            **snap.stats,
            "num_used_cells": snap.num_used_cells,
            "num_threads": snap.num_threads,
        }

    def _ensure_thread(self) -> None:
        if self._is_closed:
            raise EngineError(self.name, "<submit>", "the engine is closed")
        if not self._is_started:
            self._is_started = True
            self._thread.post(self._core, cmd.Start())

    def _track(self, query_id: str, future: asyncio.Future[Outputs]) -> None:
        futures = self._futures_by_query.setdefault(query_id, set())
        futures.add(future)
        future.add_done_callback(futures.discard)

    def _phase(self, request: EngineRequest, future: asyncio.Future[Outputs]) -> cmd.AddPhase:
        if request.op not in OPS_BY_KIND[EngineKind.LLM]:
            raise ValueError(f"an LLM engine cannot run op {request.op.value!r}")
        request_id = request.llm_request_id or (
            f"{request.query_id}/{request.params.get('request', request.node)}"
        )
        content = ""
        content_free = None
        if request.op in PREFILL_OPS:
            template = request.params.get("template")
            if template is None:
                raise ValueError("an LLM prefill node needs a 'template' param")
            content = render(str(template), request.inputs)
            if request.params.get("content_free") is not None:  # a calibrated judge's
                content_free = render(str(template), _content_free_values(request))
        return cmd.AddPhase(request, request_id, content, future, content_free)


def _content_free_values(request: EngineRequest) -> dict[str, Any]:
    """A calibrated judge's prefill: every placeholder content-free, except the ones its
    ``content_free_keeps`` param names (they keep their value, e.g. the question)."""
    blank = str(request.params["content_free"])
    keeps = set(request.params.get("content_free_keeps") or ())
    names = placeholders(str(request.params["template"]))
    return {n: request.inputs[n] if n in keeps else blank for n in names}
