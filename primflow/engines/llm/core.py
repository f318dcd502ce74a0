"""The LLM engine thread: owns the model, the context and every llama call.

Each step is ``schedule -> llama_decode -> sample -> resolve``; the process's one llama
thread (thread.py, stack.md P10) runs the steps of every engine in turn and hands each
engine its commands between steps. Invariants:

- Every phase future resolves when its work has really been computed: a prefill when
  its tokens are in the KV cache, a partial decode when its item is complete, a decode
  when generation has ended. A bad request fails only its own future.
- Per-query state dies with ``release`` / ``abort``; abort also removes KV at once.
- ``snapshot`` is replaced (never mutated) after every step, so other threads may read it.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from primflow.engines.base import EngineError
from primflow.engines.llm import commands as cmd
from primflow.engines.llm.config import LlamaConfig
from primflow.engines.llm.generation import Generator
from primflow.engines.llm.model import LlamaModel, check_model_path, default_model_path
from primflow.engines.llm.prompting import PromptBuilder
from primflow.engines.llm.quantize import requantized
from primflow.engines.llm.runner import Chunk, DecodeError, LlamaRunner
from primflow.engines.llm.sampling import SamplingParams
from primflow.engines.llm.scheduler import StepPlan, StepScheduler
from primflow.engines.llm.sequence import LLMState, Sequence, Waiter
from primflow.engines.llm.step_groups import oldest_query_start_s
from primflow.engines.placement import CoreBudget
from primflow.graph.ir import Op
from primflow.graph.ops import STATE

STAT_NAMES = (
    "num_steps",
    "num_prefilled_tokens",
    "num_reused_tokens",
    "num_prefix_hits",
    "num_decoded_tokens",
    "num_preemptions",
    "num_cached_prefixes",
    "num_requests",
)


@dataclass(frozen=True, slots=True)
class CoreSnapshot:
    is_loaded: bool = False
    error: str = ""
    num_waiting: int = 0
    num_running: int = 0
    num_used_cells: int = 0
    kv_capacity: int = 1
    num_threads: int = 0
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAT_NAMES, 0))


class EngineCore:
    """One engine's model, context and scheduler; driven by the llama thread (thread.py)."""

    def __init__(self, name: str, config: LlamaConfig, budget: CoreBudget | None) -> None:
        self.name = name
        self.config = config
        self.budget = budget
        self.budget_name = name  # the name this engine's group is busy under (thread.py)
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.snapshot = CoreSnapshot()
        self._requests: dict[str, Sequence] = {}
        self._fixed_threads: int | None = None
        self._is_loaded = False
        self._error: Exception | None = None

    # -- called by the llama thread -------------------------------------------------------

    def load(self, budget_name: str) -> bool:
        """Load the model and warm up; False (and every later phase refused) on failure."""
        self.budget_name = budget_name
        try:
            self._load()
        except Exception as err:
            self._error = err
            self.snapshot = CoreSnapshot(error=f"model load failed: {err}")
            self.ready.set_exception(err)
            return False
        self._is_loaded = True
        self.ready.set_result(None)
        return True

    def has_work(self) -> bool:
        return self._is_loaded and self.scheduler.has_work()

    def is_speculative(self) -> bool:
        """All its work is speculative (open prompts), for the core budget."""
        return self._is_loaded and self.scheduler.is_speculative()

    def oldest_query_start_s(self) -> float | None:
        """When the oldest query of its real work was submitted, for the core budget."""
        return oldest_query_start_s(self.scheduler.live) if self._is_loaded else None

    def step(self) -> bool:
        return self._step()

    def publish(self) -> None:
        self._publish()

    def shutdown(self) -> None:
        if self._is_loaded:
            self._is_loaded = False
            self._close(EngineError(self.name, "<close>", "the engine closed"))
        if not self.stopped.done():
            self.stopped.set_result(None)

    def crash(self, error: Exception) -> None:
        """An unexpected error in this engine: fail its work, free its model, refuse more."""
        self._error = error
        self._is_loaded = False
        self.snapshot = CoreSnapshot(error=f"engine thread error: {error!r}")
        self._close(EngineError(self.name, "<llm>", f"the engine failed: {error!r}"))
        if not self.stopped.done():
            self.stopped.set_result(None)

    def refuse(self, command: cmd.Command) -> None:
        """A command for an engine that could not start or has stopped."""
        if self._error is not None:
            reason = f"LLM engine could not start: {self._error}"
        else:
            reason = "the engine is closed"
        if isinstance(command, cmd.AddPhase):
            cmd.fail(command.future, EngineError(self.name, command.request.node, reason))
        elif isinstance(command, cmd.Probe):
            command.future.set_exception(self._error or RuntimeError(reason))

    def handle(self, command: cmd.Command) -> None:
        self._handle(command)

    def _load(self) -> None:
        path = self.config.model_path or default_model_path()
        if self.config.quantization is not None:
            check_model_path(path)  # a clear error before llama.cpp sees the file
            path = requantized(path, self.config.quantization)
        self.model = LlamaModel(path, verbose=self.config.verbose)
        cfg = self.config
        self.runner = LlamaRunner(
            self.model, cfg.n_ctx, cfg.n_batch, cfg.n_seq_max, cfg.n_threads, cfg.flash_attn
        )
        self.scheduler = StepScheduler(
            num_slots=cfg.n_seq_max,
            max_num_batched_tokens=cfg.n_batch,
            kv_capacity=self.runner.n_ctx,
            min_reuse_tokens=cfg.min_reuse_tokens,
            max_num_cached_prefixes=cfg.max_num_cached_prefixes,
            reserve_tokens=cfg.kv_reserve_tokens,
            max_speculative_tokens_per_step=cfg.max_speculative_tokens_per_step,
            is_speculation_idle_only=cfg.is_speculation_idle_only,
            max_num_queries_per_step=cfg.max_num_queries_per_step,
            max_num_seqs_per_step=cfg.max_num_seqs_per_step,
        )
        self.prompts = PromptBuilder(self.model, max_tokens=self.runner.n_ctx_seq - 1)
        self.generator = Generator(self.name, self.model, self.runner.n_ctx_seq)
        self._apply_thread_budget()
        self._warm_up()
        self._publish()

    def _warm_up(self) -> None:
        """One tiny decode on this thread, so the first request pays no setup cost."""
        tokens = self.model.tokenize("Hello", parse_special=False, add_bos=True)
        self.runner.decode([Chunk(0, 0, tokens, wants_logits=True)])
        self.runner.clear()

    def _close(self, error: EngineError) -> None:
        for seq in list(self._requests.values()):
            self._drop(seq, error)
        self.runner.close()
        self.model.close()

    # -- commands -----------------------------------------------------------------------

    def _handle(self, command: cmd.Command) -> None:
        if isinstance(command, cmd.AddPhase):
            self._add_phase(command)
        elif isinstance(command, cmd.Abort):
            self._end_query(command.query_id, is_abort=True)
        elif isinstance(command, cmd.Release):
            self._end_query(command.query_id, is_abort=False)
        elif isinstance(command, cmd.SetThreads):
            self._fixed_threads = command.num_threads
            self.runner.set_num_threads(command.num_threads)
            self._publish()  # a probe posted after this command sees the new count
        elif isinstance(command, cmd.Probe):
            try:
                command.future.set_result(command.read(self))
            except Exception as err:
                command.future.set_exception(err)

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
            priority=request.priority,
            query_start_s=request.query_start_s,
            arrival_s=request.arrival_s or time.monotonic(),
        )
        self._requests[phase.request_id] = seq
        seq.prefill_waiters.append(Waiter(phase.future, request.node, num_tokens=len(tokens)))
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
        seq.priority = phase.request.priority
        seq.query_start_s = phase.request.query_start_s
        seq.prefill_waiters.append(Waiter(phase.future, phase.request.node, len(seq.tokens)))

    def _decode(self, phase: cmd.AddPhase) -> None:
        seq = self._find(phase, "a decode needs its prefill first")
        if not seq.is_prompt_closed:
            raise ValueError(f"LLM request {phase.request_id!r} has no full prefill yet")
        seq.priority = phase.request.priority
        seq.query_start_s = phase.request.query_start_s
        if not seq.is_generating:
            max_new_tokens = SamplingParams.from_params(phase.request.params).max_tokens
            self.scheduler.set_max_new_tokens(seq, max_new_tokens)
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

    # -- one step -------------------------------------------------------------------------

    def _step(self) -> bool:
        """Run one scheduled step; False when nothing could be scheduled."""
        now_s = time.monotonic()
        self._apply_thread_budget()
        plan = self.scheduler.schedule(now_s)
        for seq, reason in plan.failures:
            self._drop(seq, EngineError(self.name, seq.decode_node or "<llm>", reason))
        for slot in plan.frees:
            self.runner.remove(slot)
        for src, dst, num_tokens in plan.copies:
            self.runner.copy_prefix(src, dst, num_tokens)
        for seq in plan.started:
            self._start_generation(seq)
        chunks = [c for c in plan.chunks if c.seq.slot is not None]
        if not chunks:
            self._publish()
            self._resolve_copied(plan)
            return bool(plan.copies or plan.failures or plan.started)
        try:
            rows = self.runner.decode(
                [
                    Chunk(
                        c.seq.slot,
                        c.start,
                        c.seq.tokens[c.start : c.start + c.num_tokens],
                        c.wants_logits,
                    )
                    for c in chunks
                    if c.seq.slot is not None
                ]
            )
        except DecodeError as err:
            self._fail_step(plan, str(err))
            return True
        self.scheduler.update(plan)
        self._publish()  # counters first, so a resolved future never sees older stats
        self._resolve_copied(plan)
        self._after_step(plan, iter(rows))
        self._publish()
        return True

    def _after_step(self, plan: StepPlan, rows: Any) -> None:
        for chunk in plan.chunks:
            seq = chunk.seq
            if chunk.wants_logits:
                logits = next(rows)
                if seq.is_generating and not seq.is_finished:
                    self._take_token(seq, logits)
                elif not seq.is_generating:
                    seq.last_logits = logits.copy()  # the decode phase comes later
            self._resolve_prefills(seq)

    def _take_token(self, seq: Sequence, logits: Any) -> None:
        if self.generator.take_token(seq, logits):
            for slot, from_pos in self.scheduler.finish(seq, time.monotonic()):
                self.runner.remove(slot, from_pos)

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
            cmd.resolve(waiter.future, {STATE: state})

    def _fail_step(self, plan: StepPlan, reason: str) -> None:
        for chunk in plan.chunks:
            node = chunk.seq.decode_node or "<llm prefill>"
            self._drop(chunk.seq, EngineError(self.name, node, f"llama_decode failed: {reason}"))

    def _apply_thread_budget(self) -> None:
        if self._fixed_threads is None and self.budget is not None:
            self.runner.set_num_threads(self.budget.threads_for(self.budget_name))

    def _publish(self) -> None:
        live = self.scheduler.live
        stats = self.scheduler.stats
        self.snapshot = CoreSnapshot(
            is_loaded=True,
            num_waiting=sum(1 for s in live if s.slot is None),
            num_running=sum(1 for s in live if s.slot is not None),
            num_used_cells=self.scheduler.num_used_cells,
            kv_capacity=self.scheduler.kv_capacity,
            num_threads=self.runner.n_threads,
            stats={
                "num_steps": stats.num_steps,
                "num_prefilled_tokens": stats.num_prefilled_tokens,
                "num_reused_tokens": stats.num_reused_tokens,
                "num_prefix_hits": stats.num_prefix_hits,
                "num_decoded_tokens": stats.num_decoded_tokens,
                "num_preemptions": stats.num_preemptions,
                "num_cached_prefixes": len(self.scheduler.cache),
                "num_requests": len(self._requests),
            },
        )
