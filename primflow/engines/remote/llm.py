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
decode is never retried, a warm-up is (it is idempotent); a stream the server ends
without a ``finish_reason`` fails its waiters rather than pass for a whole answer. A
server returns no log-probabilities of given answers, so a calibrated choice
(``calibrate``) falls back to the grammar here (logged once per engine) and is recorded
without scores. The
per-call state and the reading of stream events live in engines/remote/calls.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
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
from primflow.engines.remote.calls import (
    STAT_NAMES,
    Call,
    RemoteLLMState,
    Waiter,
    count_usage,
    event_text,
    is_final_event,
    settle_after,
    usage_of,
)
from primflow.engines.remote.dialects import DIALECTS, Dialect, DialectName
from primflow.engines.remote.http import ClientSettings, OrderKey, RemoteClient, RemoteError
from primflow.engines.remote.requests import CHAT, PATHS, decode_body, warmup_body
from primflow.engines.remote.server import check_model
from primflow.graph.ir import Op
from primflow.graph.ops import STATE
from primflow.prompts import render

__all__ = ["RemoteLLMEngine", "RemoteLLMState"]

log = logging.getLogger(__name__)

MAX_NUM_ABORTED_QUERIES = 10_000  # aborted ids remembered; old ones are forgotten
MAX_NUM_PENDING_BATCHES = 1024


def order_key(request: EngineRequest) -> OrderKey:
    """The order a request takes an HTTP slot in: first come under ``fifo`` or for a
    client that does not schedule by query (no ``query_start_s``); else the older query
    first, then the longer remaining critical path (as critical_path orders)."""
    if request.policy in (None, "fifo") or request.query_start_s is None:
        return ()
    return (request.query_start_s, -request.priority)


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
        self._calls: dict[str, Call] = {}
        self._has_warned_calibrate = False  # a calibrated choice fell back to the grammar
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._aborted: OrderedDict[str, None] = OrderedDict()  # refuse their late work
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        self._last_error = ""

    @property
    def max_concurrent_batches(self) -> int:
        # Every ready phase is handed over at once, as to the embedded LLM engine: the
        # HTTP slots (max_concurrent_requests) go to waiting requests in the order of
        # their scheduling policy (order_key), so a server that serves one request at a
        # time serves the critical path first.
        return MAX_NUM_PENDING_BATCHES

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
        call = Call(self.name, request_id, request.query_id, system, [content], is_closed)
        self._calls[request_id] = call
        state: Outputs = {STATE: RemoteLLMState(self.name, request_id)}
        if is_closed or not self.is_warmup_enabled:
            future.set_result(state)
            return
        call.warmup = asyncio.create_task(self._warm_up(call, request))
        call.warmup.add_done_callback(lambda task: settle_after(task, future, state))

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
            call.warmup.add_done_callback(lambda task: settle_after(task, future, state))

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
            if request.params.get("calibrate") and not self._has_warned_calibrate:
                self._has_warned_calibrate = True
                log.warning(
                    "engine %s (%s) cannot score choices; %s and the other calibrated "
                    "choices use the grammar (no calibration, no scores)",
                    self.name,
                    self.dialect.name.value,
                    request.node,
                )
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
            call.generation = asyncio.create_task(
                self._generate(call, body, request.on_text, order_key(request))
            )
        call.wait(Waiter(future, request.node, item_index))

    def _find(self, request_id: str, hint: str) -> Call:
        call = self._calls.get(request_id)
        if call is None:
            raise ValueError(f"no open LLM request {request_id!r}: {hint}")
        return call

    # -- requests -----------------------------------------------------------------------

    async def _warm_up(self, call: Call, request: EngineRequest) -> None:
        body = warmup_body(
            self.model, self.api, self.dialect, call.system, call.parts[0], request.priority
        )
        try:
            response = await self.client.post_json(
                PATHS[self.api], body, is_idempotent=True, order=order_key(request)
            )
        except RemoteError as err:
            self._last_error = str(err)
            raise EngineError(self.name, request.node, f"prefix warm-up failed: {err}") from err
        self._stats["num_warmups"] += 1
        count_usage(self._stats, response)

    async def _generate(
        self,
        call: Call,
        body: dict[str, Any],
        on_text: Callable[[str], None] | None,
        order: OrderKey,
    ) -> None:
        if call.warmup is not None:
            with contextlib.suppress(Exception):  # its own node reports a failed warm-up
                await call.warmup
        assert call.output is not None
        output = call.output
        self._stats["num_generations"] += 1
        try:
            async with self.client.stream_events(PATHS[self.api], body, order) as events:
                is_finished = False
                async for event in events:
                    count_usage(self._stats, event)
                    call.usage = usage_of(event) or call.usage
                    text = event_text(event, self.api)
                    if text:
                        call.emit(output.feed(text.encode()).text, on_text)
                    is_finished = is_finished or is_final_event(event)
                    if output.is_done:  # every item is in: stop the server generating
                        self._stats["num_early_closes"] += 1
                        is_finished = True
                        break
                if not is_finished:
                    raise RemoteError(
                        events.url,
                        f"the stream ended after {events.num_events} events without a "
                        "finish_reason (cut short by the server; llama-cpp-python's server "
                        "does so when another request waits, unless started with "
                        "--interrupt_requests false)",
                    )
        except Exception as err:  # a broken stream fails this call's waiters, nothing else
            self._last_error = str(err)
            call.error = f"the decode stream failed: {err}"
            call.fail(call.error)
            return
        call.emit(output.finish().text, on_text)
        call.finish()

    def _drop(self, call: Call, reason: str) -> None:
        self._calls.pop(call.request_id, None)
        call.cancel_tasks()
        call.fail(reason)

    def _track(self, query_id: str, future: asyncio.Future[Outputs]) -> None:
        futures = self._futures_by_query.setdefault(query_id, set())
        futures.add(future)
        future.add_done_callback(futures.discard)
