"""The LLM engine's phases: runtime primitives in, sequences and resolved futures out.

Owns the table of open LLM calls (``Sequence`` per ``request_id``) and the phase
futures. An ``AddPhase`` opens a call (prefill, partial prefill), extends its prompt
(full prefill) or starts its generation (decode, partial decode); each phase's future
resolves when its work has really been computed, or fails alone with an EngineError.
Every phase refreshes what the step order reads from the sequence (priority, query
start, depth, the engine scheduler's policy). :class:`~.core.EngineCore` inherits this
(the split keeps the llama side of a step apart from the bookkeeping of phases); it
runs on the llama thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from primflow.engines.base import USAGE, EngineError, EngineRequest, TokenUsage
from primflow.engines.llm import commands as cmd
from primflow.engines.llm.calibration import ChoiceCalibration, is_calibrated
from primflow.engines.llm.sampling import SamplingParams
from primflow.engines.llm.scheduler import StepPlan
from primflow.engines.llm.sequence import LLMState, Sequence, Waiter
from primflow.graph.ir import Op
from primflow.graph.ops import STATE


class PhaseIntake(ChoiceCalibration):
    """Phase handling of an engine core; the state (declared by ChoiceCalibration) is
    set by the core's load."""

    def _add_phase(self, phase: cmd.AddPhase) -> None:
        handlers: dict[Op, Callable[[cmd.AddPhase], None]] = {
            Op.LLM_PREFILL: self._open,
            Op.LLM_PARTIAL_PREFILL: self._open,
            Op.LLM_FULL_PREFILL: self._append,
            Op.LLM_DECODE: self._decode,
            Op.LLM_PARTIAL_DECODE: self._decode,
        }
        try:
            handlers[phase.request.op](phase)
        except (ValueError, KeyError, TypeError) as err:
            reason = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
            cmd.fail(phase.future, EngineError(self.name, phase.request.node, str(reason)))

    def _open(self, phase: cmd.AddPhase) -> None:
        request = phase.request
        if phase.request_id in self._requests:
            raise ValueError(f"LLM request {phase.request_id!r} is already open")
        is_closed = request.op is Op.LLM_PREFILL
        if is_closed and not phase.content.strip():
            raise ValueError("the prompt is empty (the template rendered no user content)")
        system = request.params.get("system")
        tokens = self.prompts.opening(system, phase.content, is_closed=is_closed)
        seq = Sequence(
            request_id=phase.request_id,
            query_id=request.query_id,
            tokens=tokens,
            is_prompt_closed=is_closed,
            system=system,
            num_content_chars=len(phase.content.strip()),
            arrival_s=request.arrival_s or time.monotonic(),
            content_free=phase.content_free,
        )
        _note_phase(seq, request)
        self._requests[phase.request_id] = seq
        waiter = Waiter(phase.future, request.node, len(tokens), num_input_tokens=len(tokens))
        seq.prefill_waiters.append(waiter)
        self.scheduler.add(seq)

    def _append(self, phase: cmd.AddPhase) -> None:
        seq = self._find(phase, "a full prefill needs its partial prefill first")
        if seq.is_prompt_closed:
            raise ValueError(f"LLM request {phase.request_id!r} already has its whole prompt")
        seq.num_content_chars += len(phase.content.strip())
        tokens = self.prompts.closing(seq.system, phase.content, seq.num_prompt_tokens)
        if seq.num_content_chars == 0:
            raise ValueError("the prompt is empty (the template rendered no user content)")
        seq.append_prompt(tokens, is_last=True)
        if seq.content_free is not None and phase.content_free is not None:
            seq.content_free += phase.content_free
        else:
            seq.content_free = None
        _note_phase(seq, phase.request)
        waiter = Waiter(phase.future, phase.request.node, len(seq.tokens), len(tokens))
        seq.prefill_waiters.append(waiter)

    def _decode(self, phase: cmd.AddPhase) -> None:
        seq = self._find(phase, "a decode needs its prefill first")
        if not seq.is_prompt_closed:
            raise ValueError(f"LLM request {phase.request_id!r} has no full prefill yet")
        _note_phase(seq, phase.request)
        if not seq.is_generating:
            max_new_tokens = SamplingParams.from_params(phase.request.params).max_tokens
            self.scheduler.set_max_new_tokens(seq, max_new_tokens)
            if is_calibrated(phase.request.params):  # checked before generation starts
                self._start_scoring(seq, phase.request.params)
            self.generator.start(seq, phase.request)
            seq.loop = phase.future.get_loop()
        self.generator.add_waiter(seq, phase.request, phase.future)
        if seq.last_logits is not None and not seq.is_finished and self.scheduler.may_start(seq):
            self._start_generation(seq)

    def _start_generation(self, seq: Sequence) -> None:
        """The first token comes from the logits saved at the end of prefill."""
        if seq.last_logits is not None and not seq.is_finished:
            logits, seq.last_logits = seq.last_logits, None
            self._take_token(seq, logits)

    def _take_token(self, seq: Sequence, logits: np.ndarray) -> None:
        if seq.scorer is not None:  # a calibrated choice (or its prior) scores instead
            self._score_token(seq, logits)
        elif self.generator.take_token(seq, logits):
            for slot, from_pos in self.scheduler.finish(seq, time.monotonic()):
                self.runner.remove(slot, from_pos)

    def _find(self, phase: cmd.AddPhase, hint: str) -> Sequence:
        seq = self._requests.get(phase.request_id)
        if seq is None:
            raise ValueError(f"no open LLM request {phase.request_id!r}: {hint}")
        return seq

    def _end_query(self, query_id: str, is_abort: bool) -> None:
        for seq in [s for s in self._requests.values() if s.query_id == query_id]:
            reason = "the query was aborted" if is_abort else "the query ended"
            self._drop(seq, EngineError(self.name, seq.decode_node or "<llm>", reason))
        if is_abort:
            for slot in self.scheduler.drop_cached(query_id):
                self.runner.remove(slot)

    def _drop(self, seq: Sequence, error: EngineError) -> None:
        """Forget ``seq`` now: free its KV and fail whatever still waits on it."""
        self._requests.pop(seq.request_id, None)
        for slot in self.scheduler.remove(seq):
            self.runner.remove(slot)
        for waiter in seq.prefill_waiters + seq.decode_waiters:
            cmd.fail(waiter.future, error)
        seq.prefill_waiters.clear()
        seq.decode_waiters.clear()
        self.generator.close(seq)
        for judge in self._prior_failed(seq, error):
            self._drop(judge, error)

    def _resolve_copied(self, plan: StepPlan) -> None:
        """An open prompt can be wholly copied from the prefix cache: nothing to compute."""
        if plan.copies:
            for seq in [s for s in self.scheduler.live if s.prefill_waiters]:
                self._resolve_prefills(seq)

    def _resolve_prefills(self, seq: Sequence) -> None:
        done = [w for w in seq.prefill_waiters if w.num_tokens <= seq.num_computed]
        for waiter in done:
            seq.prefill_waiters.remove(waiter)
            state = LLMState(self.name, seq.request_id, waiter.num_tokens)
            usage = TokenUsage(num_input_tokens=waiter.num_input_tokens)
            cmd.resolve(waiter.future, {STATE: state, USAGE: usage})

    def _fail_step(self, plan: StepPlan, reason: str) -> None:
        for chunk in plan.chunks:
            node = chunk.seq.decode_node or "<llm prefill>"
            self._drop(chunk.seq, EngineError(self.name, node, f"llama_decode failed: {reason}"))


def _note_phase(seq: Sequence, request: EngineRequest) -> None:
    """What the step order reads, from the sequence's latest phase."""
    seq.priority = request.priority
    seq.query_start_s = request.query_start_s
    seq.query_priority = request.query_priority
    seq.depth = request.depth
    seq.policy = request.policy
