"""Generation of one sequence: sample, stream text and items, finish, resolve decodes.

Engine thread only. Invariants:

- Decode phases of one request share one generation: the first decode (full or
  partial) starts it with its params; later ones only wait on it.
- ``LLM_DECODE`` resolves at the end with ``{"text"}`` (plus ``"items"`` with a parser).
- ``LLM_PARTIAL_DECODE(index i)`` resolves with ``{"items": [item_i], "state"}`` as soon
  as item i is complete. If generation ends with fewer items, the remaining partial
  decodes resolve with ``{"items": []}`` rather than hang.
- Each decode's outputs carry ``usage``: the tokens generated since the previous decode
  of the generation resolved, so a generation's decodes sum to its generated tokens.
- Generation ends at an end-of-generation token, a stop string, a closed structure
  (the parser is done), ``max_tokens``, or a full context; the reason is recorded.
- With ``ignore_eos`` an end-of-generation token does not end generation: it joins
  ``seq.tokens`` like any token (it is fed back, so KV positions stay one per token and
  it counts toward ``max_tokens``) but adds no text, so no special token reaches the
  answer. Structured decodes (a parser or a grammar) refuse ``ignore_eos``: they end
  when their structure closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import numpy as np

from primflow.engines.base import USAGE, EngineRequest, Outputs, TokenUsage
from primflow.engines.llm import commands as cmd
from primflow.engines.llm.grammar import decode_grammar
from primflow.engines.llm.model import LlamaModel
from primflow.engines.llm.output import Delta, GenerationOutput
from primflow.engines.llm.parsers import make_parser
from primflow.engines.llm.sampling import SamplingParams, TokenSampler
from primflow.engines.llm.sequence import LLMState, Sequence, Waiter
from primflow.graph.ir import Op
from primflow.graph.ops import CHOICE_SCORES, ITEMS, STATE, TEXT


class Generator:
    def __init__(self, engine_name: str, model: LlamaModel, max_seq_tokens: int) -> None:
        self.engine_name = engine_name
        self.model = model
        self.max_seq_tokens = max_seq_tokens

    def start(self, seq: Sequence, request: EngineRequest) -> None:
        """Set up sampling, grammar and parser from the first decode phase's params."""
        params = request.params
        sampling = SamplingParams.from_params(params)
        num_items = _num_items(params)
        parser_kind = params.get("parser")
        if request.op is Op.LLM_PARTIAL_DECODE and not parser_kind:
            raise ValueError("a partial decode needs a 'parser' param to split items")
        parser = make_parser(parser_kind, num_items) if parser_kind else None
        # A calibrated choice is scored, not sampled (calibration.py): no grammar.
        grammar = None if params.get("calibrate") else decode_grammar(params, sampling.max_tokens)
        if sampling.ignore_eos and (parser is not None or grammar is not None):
            raise ValueError(
                "ignore_eos applies to free-text decodes only, not to one with a parser "
                "or a JSON schema"
            )
        seq.sampler = TokenSampler(self.model.vocab, self.model.num_vocab, sampling, grammar)
        seq.sampling = sampling
        seq.output = GenerationOutput(sampling.stop, parser)
        seq.num_items = num_items
        seq.on_text = request.on_text
        seq.decode_node = request.node

    def add_waiter(
        self, seq: Sequence, request: EngineRequest, future: asyncio.Future[Outputs]
    ) -> None:
        if request.op is Op.LLM_DECODE:
            waiter = Waiter(future, request.node)
        else:
            waiter = Waiter(future, request.node, item_index=_item_index(request.params, seq))
        if seq.is_finished or self._item_ready(seq, waiter):
            self._resolve(seq, waiter)
        else:
            seq.decode_waiters.append(waiter)

    def take_token(self, seq: Sequence, logits: np.ndarray) -> bool:
        """Sample the next token from ``logits``; True when generation has ended."""
        assert seq.sampler is not None and seq.output is not None and seq.sampling is not None
        token = seq.sampler.sample(logits)
        is_end = self.model.is_end_of_generation(token)
        if is_end and not seq.sampling.ignore_eos:
            return self._finish(seq, "stop")
        seq.tokens.append(token)
        if not is_end:
            self._emit(seq, seq.output.feed(self.model.piece(token)))
        if seq.output.is_done:
            return self._finish(seq, "stop")
        if seq.num_generated >= seq.sampling.max_tokens:
            return self._finish(seq, "length")
        if len(seq.tokens) >= self.max_seq_tokens:
            return self._finish(seq, "context")
        return False

    def finish_choice(self, seq: Sequence, answer: str) -> None:
        """A scored choice decided: ``answer`` is its whole text (calibration.py)."""
        assert seq.output is not None
        self._emit(seq, seq.output.feed(answer.encode()))
        self._finish(seq, "stop")

    def close(self, seq: Sequence) -> None:
        if seq.sampler is not None:
            seq.sampler.close()
            seq.sampler = None

    def _finish(self, seq: Sequence, reason: str) -> bool:
        assert seq.output is not None
        self._emit(seq, seq.output.finish())
        seq.is_finished = True
        seq.finish_reason = reason
        for waiter in seq.decode_waiters:
            self._resolve(seq, waiter)
        seq.decode_waiters.clear()
        self.close(seq)
        return True

    def _emit(self, seq: Sequence, delta: Delta) -> None:
        if delta.text and seq.on_text is not None and seq.loop is not None:
            cmd.call_on_loop(seq.loop, seq.on_text, delta.text)
        if delta.items:
            ready = [w for w in seq.decode_waiters if self._item_ready(seq, w)]
            for waiter in ready:
                seq.decode_waiters.remove(waiter)
                self._resolve(seq, waiter)

    def _item_ready(self, seq: Sequence, waiter: Waiter) -> bool:
        index = waiter.item_index
        return index is not None and seq.output is not None and index < len(seq.output.items)

    def _resolve(self, seq: Sequence, waiter: Waiter) -> None:
        assert seq.output is not None
        items = seq.output.items
        if waiter.item_index is None:
            result: dict[str, Any] = {TEXT: seq.output.text}
            if seq.output.parser is not None:
                result[ITEMS] = items
            if seq.choice_scores is not None:
                result[CHOICE_SCORES] = seq.choice_scores
        else:
            index = waiter.item_index
            state = LLMState(self.engine_name, seq.request_id, len(seq.tokens), index)
            result = {ITEMS: items[index : index + 1], STATE: state}
        num_output_tokens = max(seq.num_generated - seq.num_reported_output_tokens, 0)
        seq.num_reported_output_tokens += num_output_tokens
        result[USAGE] = TokenUsage(num_output_tokens=num_output_tokens)
        cmd.resolve(waiter.future, result)


def _num_items(params: Mapping[str, Any]) -> int | None:
    value = params.get("num_items")
    if value is None:
        return None
    num_items = int(value)
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    return num_items


def _item_index(params: Mapping[str, Any], seq: Sequence) -> int:
    if "index" not in params:
        raise ValueError("a partial decode needs an 'index' param")
    index = int(params["index"])
    limit = seq.num_items
    if index < 0 or (limit is not None and index >= limit):
        raise ValueError(f"partial decode index {index} is outside 0..{(limit or 1) - 1}")
    return index
