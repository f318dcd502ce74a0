"""One LLM call on a remote server: its prompt so far, its one streamed generation, and
the futures (whole decode, partial-decode items) waiting on that generation.

Owns the per-call state of :class:`~primflow.engines.remote.llm.RemoteLLMEngine` and the
reading of the server's stream events and usage fields. Invariants:

- A waiter resolves at most once: a partial decode (``item_index`` set) as soon as its
  item has closed in the incremental parser, the whole decode when the generation ends;
  a failed generation fails every waiter still open with an ``EngineError`` naming the
  engine and the waiter's node.
- The whole decode's outputs carry ``usage`` (a ``TokenUsage``) when the server sent
  its usage before the stream ended: the request's prompt tokens (the call's prefill
  phases run inside it) and completion tokens. Partial decodes, and a stream closed
  early once every item was in, carry none.
- Cached prompt tokens are read once per response: ``usage.prompt_tokens_details.
  cached_tokens`` (OpenAI, vLLM, SGLang) wins; llama.cpp's ``timings.cache_n`` is read
  only when usage has no details.
- A stream counts as finished only when an event carried a ``finish_reason``: a server
  that ends a stream early with ``[DONE]`` (llama-cpp-python does when another request
  waits, unless started with ``--interrupt_requests false``) must not pass for a whole
  answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from primflow.engines.base import USAGE, EngineError, Outputs, TokenUsage
from primflow.engines.llm.output import GenerationOutput
from primflow.engines.remote.requests import CHAT
from primflow.graph.ops import ITEMS, STATE, TEXT

STAT_NAMES = (
    "num_warmups",
    "num_generations",
    "num_early_closes",
    "num_prompt_tokens",
    "num_cached_prompt_tokens",
    "num_completion_tokens",
)


@dataclass(frozen=True, slots=True)
class RemoteLLMState:
    """The ``state`` an LLM phase outputs on a remote engine: names the request."""

    engine: str
    request_id: str
    item_index: int | None = None


@dataclass(slots=True)
class Waiter:
    future: asyncio.Future[Outputs]
    node: str
    item_index: int | None  # None: the whole decode


@dataclass(eq=False, slots=True)
class Call:
    """One LLM call of one query: its prompt so far and its one generation."""

    engine: str
    request_id: str
    query_id: str
    system: str | None
    parts: list[str]
    is_closed: bool
    warmup: asyncio.Task[None] | None = None
    generation: asyncio.Task[None] | None = None
    output: GenerationOutput | None = None
    waiters: list[Waiter] = field(default_factory=list)
    error: str | None = None  # why the generation failed
    usage: TokenUsage | None = None  # the generation's, as the server reported it

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def wait(self, waiter: Waiter) -> None:
        """Resolve ``waiter`` now if its result is already there, else keep it."""
        if self.error is not None:
            waiter.future.set_exception(EngineError(self.engine, waiter.node, self.error))
            return
        is_finished = self.generation is not None and self.generation.done()
        if is_finished or self._is_item_ready(waiter):
            self._resolve(waiter)
        else:
            self.waiters.append(waiter)

    def emit(self, text: str, on_text: Callable[[str], None] | None) -> None:
        """New text of the generation: stream it, resolve the items it closed."""
        if text and on_text is not None:
            on_text(text)
        for waiter in [w for w in self.waiters if self._is_item_ready(w)]:
            self.waiters.remove(waiter)
            self._resolve(waiter)

    def finish(self) -> None:
        """The generation ended: every waiter gets what the output holds."""
        for waiter in self.waiters:
            self._resolve(waiter)
        self.waiters.clear()

    def fail(self, reason: str) -> None:
        for waiter in self.waiters:
            if not waiter.future.done():
                waiter.future.set_exception(EngineError(self.engine, waiter.node, reason))
        self.waiters.clear()

    def cancel_tasks(self) -> None:
        for task in (self.warmup, self.generation):
            if task is not None and not task.done():
                task.cancel()  # closes its connection: the server stops this request

    def _is_item_ready(self, waiter: Waiter) -> bool:
        index = waiter.item_index
        return index is not None and self.output is not None and index < len(self.output.items)

    def _resolve(self, waiter: Waiter) -> None:
        if waiter.future.done() or self.output is None:
            return
        items = self.output.items
        if waiter.item_index is None:
            result: Outputs = {TEXT: self.output.text}
            if self.output.parser is not None:
                result[ITEMS] = items
            if self.usage is not None:
                result[USAGE] = self.usage
        else:
            index = waiter.item_index
            state = RemoteLLMState(self.engine, self.request_id, index)
            result = {ITEMS: items[index : index + 1], STATE: state}
        waiter.future.set_result(result)


def event_text(event: dict[str, Any], api: str) -> str:
    """The generated text one stream event carries ("" for usage-only events)."""
    choice = _first_choice(event)
    if choice is None:
        return ""
    if api == CHAT:
        delta = choice.get("delta") or {}
        return str(delta.get("content") or "") if isinstance(delta, dict) else ""
    return str(choice.get("text") or "")


def is_final_event(event: dict[str, Any]) -> bool:
    """Whether the event ends the generation (its choice has a ``finish_reason``)."""
    choice = _first_choice(event)
    return choice is not None and bool(choice.get("finish_reason"))


def _first_choice(event: dict[str, Any]) -> dict[str, Any] | None:
    choices = event.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None
    return choices[0]


def usage_of(event: Any) -> TokenUsage | None:
    """The token counts a response or stream event carries, if any."""
    usage = event.get("usage") if isinstance(event, dict) else None
    if not isinstance(usage, dict) or not usage:
        return None
    return TokenUsage(
        int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    )


def count_usage(stats: dict[str, int], response: Any) -> None:
    """Add a response's (or stream event's) token counts to ``stats``."""
    if not isinstance(response, dict):
        return
    usage = response.get("usage") or {}
    cached: int | None = None
    if isinstance(usage, dict) and usage:
        stats["num_prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        stats["num_completion_tokens"] += int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and "cached_tokens" in details:
            cached = int(details.get("cached_tokens") or 0)
    timings = response.get("timings")  # llama.cpp's C++ server (older ones: only here)
    if cached is None and isinstance(timings, dict) and "cache_n" in timings:
        cached = int(timings.get("cache_n") or 0)
    stats["num_cached_prompt_tokens"] += cached or 0


def settle_after(
    task: asyncio.Task[None], future: asyncio.Future[Outputs], result: Outputs
) -> None:
    """A done-callback: ``future`` follows ``task`` (cancelled, failed, or ``result``)."""
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
