"""``RemoteLLMEngine``: the LLM primitives on an unmodified OpenAI-compatible server.

A remote server has no "prefill only" call, so the phases map onto plain requests:

- ``LLM_PARTIAL_PREFILL``: a **warm-up** request (the prompt so far, ``max_tokens`` 1,
  never shown) so the server's automatic prefix cache holds it; the node resolves when
  the warm-up has finished. A dialect that cannot reuse a prefix sends none (and the
  split-prefill pass does not split for it in the first place).
- ``LLM_PREFILL`` / ``LLM_FULL_PREFILL``: record the prompt (a full prefill after its
  warm-up has finished); the remaining prefill runs inside the decode request.
- ``LLM_DECODE`` / ``LLM_PARTIAL_DECODE``: the first decode of a request starts ONE
  streamed generation (after the warm-up, so it can reuse the cached prefix); its text
  goes through the embedded engine's incremental parsers, and each partial decode
  resolves as soon as its item closes. Once the parser has every item it wants, the
  stream is closed, which stops the server generating.

Invariants: ``abort(query_id)`` cancels the query's futures and closes its streams at
once; errors become ``EngineError`` naming the engine, the node and the URL; a streamed
decode is never retried, a warm-up is (it is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from primflow.engines.base import (
    Engine,
    EngineError,
    EngineHealth,
    EngineKind,
    EngineRequest,
    Outputs,
)
from primflow.engines.llm.output import GenerationOutput
from primflow.engines.llm.parsers import make_parser
from primflow.engines.profile import LatencyProfile
from primflow.engines.remote.dialects import DIALECTS, Dialect, DialectName
from primflow.engines.remote.http import ClientSettings, RemoteClient, RemoteError
from primflow.engines.remote.requests import CHAT, PATHS, decode_body, warmup_body
from primflow.engines.remote.server import check_model
from primflow.graph.ir import Op
from primflow.graph.ops import ITEMS, STATE, TEXT
from primflow.prompts import render


@dataclass(frozen=True, slots=True)
class RemoteLLMState:
    """The ``state`` an LLM phase outputs on a remote engine: names the request."""

    engine: str
    request_id: str
    item_index: int | None = None


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[Outputs]
    node: str
    item_index: int | None  # None: the whole decode


@dataclass(eq=False, slots=True)
class _Call:
    """One LLM call of one query: its prompt so far and its one generation."""

    request_id: str
    query_id: str
    system: str | None
    parts: list[str]
    is_closed: bool
    warmup: asyncio.Task[None] | None = None
    generation: asyncio.Task[None] | None = None
    output: GenerationOutput | None = None
    waiters: list[_Waiter] = field(default_factory=list)
    error: str | None = None  # why the generation failed

    @property
    def content(self) -> str:
        return "".join(self.parts)


MAX_NUM_ABORTED_QUERIES = 10_000  # aborted ids remembered; old ones are forgotten
STAT_NAMES = (
    "num_warmups",
    "num_generations",
    "num_early_closes",
    "num_prompt_tokens",
    "num_cached_prompt_tokens",
    "num_completion_tokens",
)


class RemoteLLMEngine(Engine):
    kind = EngineKind.LLM

    def __init__(
        self,
        name: str,
        settings: ClientSettings,
        model: str,
        *,
        dialect: Dialect | DialectName | str = DialectName.OPENAI,
        api: str = CHAT,
        is_warmup_enabled: bool = True,
        profile: LatencyProfile | None = None,
    ) -> None:
        super().__init__(name, profile)
        self.client = RemoteClient(settings)
        self.model = model
        self.dialect = dialect if isinstance(dialect, Dialect) else DIALECTS[DialectName(dialect)]
        if api not in PATHS:
            raise ValueError(f"api must be one of {', '.join(PATHS)}, got {api!r}")
        self.api = api
        self.is_warmup_enabled = is_warmup_enabled and self.dialect.can_reuse_prefix
        self._calls: dict[str, _Call] = {}
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._aborted: OrderedDict[str, None] = OrderedDict()  # refuse their late work
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        self._last_error = ""

    @property
    def max_concurrent_batches(self) -> int:
        return self.client.settings.max_concurrent_requests

    async def start(self) -> None:
        """Fail now, not at the first query, when the server or the model is wrong."""
        await check_model(self.client, self.name, self.model)

    async def close(self) -> None:
        for call in list(self._calls.values()):
            self._drop(call, "the engine closed")
        await self.client.close()

    def stats(self) -> dict[str, int]:
        """Counters since start; cached prompt tokens as the server reported them (0
        when it reports none, e.g. llama-cpp-python)."""
        return dict(self._stats)

    def health(self) -> EngineHealth:
        num_running = sum(
            1 for c in self._calls.values() if c.generation and not c.generation.done()
        )
        return EngineHealth(
            is_healthy=not self._last_error,
            detail=self._last_error or f"{self.client.base_url} ({self.dialect.name})",
            num_running=num_running,
        )

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        futures = []
        for request in batch:
            future: asyncio.Future[Outputs] = loop.create_future()
            request.future = future
            futures.append(future)
            if request.query_id in self._aborted:
                future.cancel()
                continue
            self._track(request.query_id, future)
            try:
                self._add(request, future)
            except (ValueError, KeyError, TypeError) as err:
                reason = err.args[0] if err.args else str(err)
                future.set_exception(EngineError(self.name, request.node, str(reason)))
        return futures

    def abort(self, query_id: str) -> None:
        self._aborted[query_id] = None
        while len(self._aborted) > MAX_NUM_ABORTED_QUERIES:
            self._aborted.popitem(last=False)
        for future in self._futures_by_query.pop(query_id, set()):
            future.cancel()
        for call in [c for c in self._calls.values() if c.query_id == query_id]:
            self._drop(call, "the query was aborted")

    def release(self, query_id: str) -> None:
        self._futures_by_query.pop(query_id, None)
        for call in [c for c in self._calls.values() if c.query_id == query_id]:
            self._drop(call, "the query ended")

    # -- phases -------------------------------------------------------------------------

    def _add(self, request: EngineRequest, future: asyncio.Future[Outputs]) -> None:
        request_id = request.llm_request_id or (
            f"{request.query_id}/{request.params.get('request', request.node)}"
        )
        handlers: dict[Op, Callable[[EngineRequest, str, asyncio.Future[Outputs]], None]] = {
            Op.LLM_PREFILL: self._open,
            Op.LLM_PARTIAL_PREFILL: self._open,
            Op.LLM_FULL_PREFILL: self._append,
            Op.LLM_DECODE: self._decode,
            Op.LLM_PARTIAL_DECODE: self._decode,
        }
        if request.op not in handlers:
            raise ValueError(f"an LLM engine cannot run op {request.op.value!r}")
        handlers[request.op](request, request_id, future)

    def _content(self, request: EngineRequest) -> str:
        template = request.params.get("template")
        if template is None:
            raise ValueError("an LLM prefill node needs a 'template' param")
        return render(str(template), request.inputs)

    def _open(
        self, request: EngineRequest, request_id: str, future: asyncio.Future[Outputs]
    ) -> None:
        if request_id in self._calls:
            raise ValueError(f"LLM request {request_id!r} is already open")
        content = self._content(request)
        is_closed = request.op is Op.LLM_PREFILL
        if is_closed and not content.strip():
            raise ValueError("the prompt is empty (the template rendered no user content)")
        system = request.params.get("system")
        call = _Call(request_id, request.query_id, system, [content], is_closed)
        self._calls[request_id] = call
        state: Outputs = {STATE: RemoteLLMState(self.name, request_id)}
        if is_closed or not self.is_warmup_enabled:
            future.set_result(state)
            return
        call.warmup = asyncio.create_task(self._warm_up(call, request))
        call.warmup.add_done_callback(lambda task: _settle_after(task, future, state))

    def _append(
        self, request: EngineRequest, request_id: str, future: asyncio.Future[Outputs]
    ) -> None:
        call = self._find(request_id, "a full prefill needs its partial prefill first")
        if call.is_closed:
            raise ValueError(f"LLM request {request_id!r} already has its whole prompt")
        call.parts.append(self._content(request))
        call.is_closed = True
        if not call.content.strip():
            raise ValueError("the prompt is empty (the template rendered no user content)")
        state: Outputs = {STATE: RemoteLLMState(self.name, request_id)}
        if call.warmup is None:
            future.set_result(state)
        else:
            call.warmup.add_done_callback(lambda task: _settle_after(task, future, state))

    def _decode(
        self, request: EngineRequest, request_id: str, future: asyncio.Future[Outputs]
    ) -> None:
        call = self._find(request_id, "a decode needs its prefill first")
        if not call.is_closed:
            raise ValueError(f"LLM request {request_id!r} has no full prefill yet")
        item_index: int | None = None
        if request.op is Op.LLM_PARTIAL_DECODE:
            if "index" not in request.params:
                raise ValueError("a partial decode needs an 'index' param")
            item_index = int(request.params["index"])
        if call.generation is None:
            body = decode_body(
                self.model,
                self.api,
                self.dialect,
                call.system,
                call.content,
                request.params,
                request.priority,
            )
            parser_kind = request.params.get("parser")
            if request.op is Op.LLM_PARTIAL_DECODE and not parser_kind:
                raise ValueError("a partial decode needs a 'parser' param to split items")
            num_items = request.params.get("num_items")
            parser = (
                make_parser(parser_kind, int(num_items) if num_items else None)
                if parser_kind
                else None
            )
            call.output = GenerationOutput((), parser)
            call.generation = asyncio.create_task(self._generate(call, body, request.on_text))
        waiter = _Waiter(future, request.node, item_index)
        if not self._resolve_if_ready(call, waiter):
            call.waiters.append(waiter)

    def _find(self, request_id: str, hint: str) -> _Call:
        call = self._calls.get(request_id)
        if call is None:
            raise ValueError(f"no open LLM request {request_id!r}: {hint}")
        return call

    # -- requests -----------------------------------------------------------------------

    async def _warm_up(self, call: _Call, request: EngineRequest) -> None:
        body = warmup_body(
            self.model, self.api, self.dialect, call.system, call.parts[0], request.priority
        )
        try:
            response = await self.client.post_json(PATHS[self.api], body, is_idempotent=True)
        except RemoteError as err:
            self._last_error = str(err)
            raise EngineError(self.name, request.node, f"prefix warm-up failed: {err}") from err
        self._stats["num_warmups"] += 1
        self._count_usage(response)

    async def _generate(
        self, call: _Call, body: dict[str, Any], on_text: Callable[[str], None] | None
    ) -> None:
        if call.warmup is not None:
            with contextlib.suppress(Exception):  # its own node reports a failed warm-up
                await call.warmup
        assert call.output is not None
        output = call.output
        self._stats["num_generations"] += 1
        try:
            async with self.client.stream_events(PATHS[self.api], body) as events:
                async for event in events:
                    self._count_usage(event)
                    text = _event_text(event, self.api)
                    if text:
                        self._emit(call, output.feed(text.encode()).text, on_text)
                    if output.is_done:  # every item is in: stop the server generating
                        self._stats["num_early_closes"] += 1
                        break
        except Exception as err:  # a broken stream fails this call's waiters, nothing else
            self._last_error = str(err)
            call.error = f"the decode stream failed: {err}"
            self._fail_waiters(call, call.error)
            return
        self._emit(call, output.finish().text, on_text)
        for waiter in list(call.waiters):
            self._resolve(call, waiter)
        call.waiters.clear()

    def _emit(self, call: _Call, text: str, on_text: Callable[[str], None] | None) -> None:
        if text and on_text is not None:
            on_text(text)
        for waiter in [w for w in call.waiters if self._item_ready(call, w)]:
            call.waiters.remove(waiter)
            self._resolve(call, waiter)

    def _item_ready(self, call: _Call, waiter: _Waiter) -> bool:
        index = waiter.item_index
        return index is not None and call.output is not None and index < len(call.output.items)

    def _resolve_if_ready(self, call: _Call, waiter: _Waiter) -> bool:
        if call.error is not None:
            waiter.future.set_exception(EngineError(self.name, waiter.node, call.error))
            return True
        is_finished = call.generation is not None and call.generation.done()
        if is_finished or self._item_ready(call, waiter):
            self._resolve(call, waiter)
            return True
        return False

    def _resolve(self, call: _Call, waiter: _Waiter) -> None:
        if waiter.future.done() or call.output is None:
            return
        items = call.output.items
        if waiter.item_index is None:
            result: Outputs = {TEXT: call.output.text}
            if call.output.parser is not None:
                result[ITEMS] = items
        else:
            index = waiter.item_index
            state = RemoteLLMState(self.name, call.request_id, index)
            result = {ITEMS: items[index : index + 1], STATE: state}
        waiter.future.set_result(result)

    def _fail_waiters(self, call: _Call, reason: str) -> None:
        for waiter in call.waiters:
            if not waiter.future.done():
                waiter.future.set_exception(EngineError(self.name, waiter.node, reason))
        call.waiters.clear()

    def _count_usage(self, response: Any) -> None:
        if not isinstance(response, dict):
            return
        usage = response.get("usage") or {}
        cached: int | None = None
        if isinstance(usage, dict) and usage:
            self._stats["num_prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self._stats["num_completion_tokens"] += int(usage.get("completion_tokens") or 0)
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict) and "cached_tokens" in details:
                cached = int(details.get("cached_tokens") or 0)
        timings = response.get("timings")  # llama.cpp's C++ server (older ones: only here)
        if cached is None and isinstance(timings, dict) and "cache_n" in timings:
            cached = int(timings.get("cache_n") or 0)
        self._stats["num_cached_prompt_tokens"] += cached or 0

    def _drop(self, call: _Call, reason: str) -> None:
        self._calls.pop(call.request_id, None)
        for task in (call.warmup, call.generation):
            if task is not None and not task.done():
                task.cancel()  # closes its connection: the server stops this request
        self._fail_waiters(call, reason)

    def _track(self, query_id: str, future: asyncio.Future[Outputs]) -> None:
        futures = self._futures_by_query.setdefault(query_id, set())
        futures.add(future)
        future.add_done_callback(futures.discard)


def _event_text(event: dict[str, Any], api: str) -> str:
    choices = event.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    if api == CHAT:
        delta = choice.get("delta") or {}
        return str(delta.get("content") or "") if isinstance(delta, dict) else ""
    return str(choice.get("text") or "")


def _settle_after(
    task: asyncio.Task[None], future: asyncio.Future[Outputs], result: Outputs
) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
