"""The fake LLM: deterministic text, pre-scheduled phases, continuous batching faked.

Each request runs on its own task, after the previous phase of its call (same
``llm_request_id``) has finished, so a pre-scheduled phase (design section 5.5) waits
here for its predecessor, as on a real engine. The state handed from phase to phase is
the prompt rendered so far (``FakeLLMState``); a decode returns a deterministic reply,
or a JSON list / object / numbered lines of items when a parser asks for items, and
streams it word by word to ``request.on_text``. Each phase reports its ``usage``
(``engines/base.py``) with a word as a token: a prefill the words of the prompt part
it rendered, a decode the words it generated. Latency: a prefill takes the profile's
latency for its prompt tokens, a decode for ``max_tokens`` output tokens (a partial
decode for its share of them). A calibrated choice is decided like the real engine's
(``choice_scoring``), from fake log-probabilities derived from the prompt and a fake
content-free prior derived from the answer alone; its scores are in the outputs.
Per-call state is freed with the query.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from primflow.engines.base import (
    USAGE,
    EngineError,
    EngineHealth,
    EngineKind,
    EngineRequest,
    Outputs,
    TokenUsage,
)
from primflow.engines.llm.choice_scoring import Scores, calibrated_scores, decide
from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import PREFILL_OPS, Op
from primflow.prompts import render
from primflow.testing.fake_engine import FakeEngine, digest


@dataclass(frozen=True, slots=True)
class FakeLLMState:
    """The KV state handed from phase to phase: here, just the prompt so far."""

    llm_request_id: str
    prompt: str


@dataclass(slots=True)
class _Call:
    prompt: str = ""
    tail: asyncio.Future[Outputs] | None = None  # the last phase submitted


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
        self._items: dict[str, list[str]] = {}

    def set_items(self, request: str, items: list[str]) -> None:
        """Fix the items the structured decode of LLM call ``request`` (the graph's
        ``request`` param) writes: its decode, or item ``i`` of each partial decode."""
        self._items[request] = list(items)

    def _items_for(self, request: EngineRequest, prompt: str, num_items: int) -> list[str]:
        fixed = self._items.get(str(request.params.get("request")))
        if fixed is None:
            return _fake_items(prompt, num_items)
        if len(fixed) < num_items:
            raise ValueError(f"set_items gave {len(fixed)} items, the decode needs {num_items}")
        return fixed[:num_items]

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
            await self.spend(request)
        finally:
            self._num_running -= 1
        await self._finish(request, future)

    async def spend(self, request: EngineRequest) -> None:
        """Take the request's time (subclasses model batching differently)."""
        await self.delay(self.latency_scale * self.request_latency_s(request))

    def request_latency_s(self, request: EngineRequest) -> float:
        if request.op in PREFILL_OPS:
            return self.profile.latency_s(1, request.num_tokens)
        return self.profile.latency_s(1, 0, num_output_tokens(request))

    def compute(self, request: EngineRequest) -> Outputs:
        call = self._call(request)
        call_id = str(request.llm_request_id)
        if request.op in PREFILL_OPS:
            values = {k: v for k, v in request.inputs.items() if k != ops.STATE}
            part = render(str(request.params.get("template", "")), values)
            call.prompt += part
            usage = TokenUsage(num_input_tokens=len(part.split()))
            return {ops.STATE: FakeLLMState(call_id, call.prompt), USAGE: usage}
        if request.op is Op.LLM_PARTIAL_DECODE:
            index = int(request.params.get("index", 0))
            item = self._items_for(request, call.prompt, index + 1)[index]
            return {
                ops.ITEMS: [item],
                ops.STATE: FakeLLMState(call_id, call.prompt),
                USAGE: TokenUsage(num_output_tokens=len(item.split())),
            }
        return self._decode(request, call.prompt)

    def _decode(self, request: EngineRequest, prompt: str) -> Outputs:
        num_items = int(request.params.get("num_items", 0) or 0)
        parser = request.params.get("parser")
        items = self._items_for(request, prompt, num_items) if parser else []
        text = self._responses.get(request.node)
        choices = request.params.get("choices")
        scores = None
        if text is None and choices and request.params.get("calibrate"):
            scores = _fake_scores([str(c) for c in choices], prompt, request.params)
            text = decide(scores)
        if text is None and choices:  # a constrained choice: one of them, by the prompt
            text = str(choices[digest(prompt) % len(choices)])
        if text is None:
            text = _format_items(items, parser) if parser else _fake_text(prompt)
        if request.on_text is not None:
            for piece in text.split(" "):
                request.on_text(piece + " ")
        outputs: Outputs = {ops.TEXT: text, USAGE: TokenUsage(num_output_tokens=len(text.split()))}
        if scores is not None:
            outputs[ops.CHOICE_SCORES] = scores
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


def num_output_tokens(request: EngineRequest) -> int:
    """The tokens a decode (or a partial decode's share) generates: all of ``max_tokens``."""
    max_tokens = int(request.params.get("max_tokens", 64))
    if request.op is Op.LLM_PARTIAL_DECODE:
        return max(1, max_tokens // max(1, int(request.params.get("num_items", 1))))
    return max_tokens


def _fake_scores(answers: list[str], prompt: str, params: Any) -> Scores:
    """Deterministic fake log-probabilities in [-10, 0): by prompt and answer, and by
    answer alone for the content-free prior."""
    logprobs = {a: -(1 + digest(f"{prompt}\x00{a}") % 900) / 100 for a in answers}
    prior = {a: -(1 + digest(a) % 900) / 100 for a in answers}
    return calibrated_scores(answers, logprobs, prior, params.get("choice_bias"))


def _fake_text(prompt: str) -> str:
    return f"Answer {digest(prompt) % 100_000:05d}: a deterministic fake reply."


def _fake_items(prompt: str, num_items: int) -> list[str]:
    key = digest(prompt) % 100_000
    return [f"item {i + 1} of {key:05d}" for i in range(num_items)]


def _format_items(items: list[str], parser: Any) -> str:
    if parser == ops.DecodeParser.JSON_OBJECT:
        return json.dumps({f"item_{i + 1}": item for i, item in enumerate(items)})
    if parser == ops.DecodeParser.LINES:
        return "\n".join(f"{i + 1}. {item}" for i, item in enumerate(items))
    return json.dumps(items)
