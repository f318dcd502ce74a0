"""The LLM engine core: owns one engine's model, context and every llama call.

Each step is ``schedule -> llama_decode -> sample -> resolve``; the process's one llama
thread (thread.py: a second calling thread slows llama.cpp down) runs the steps of
every engine in turn and hands each engine its commands between steps. Turning phase
commands into sequences and futures is phases.py's; planning a step is the step
scheduler's (scheduler.py). Invariants:

- Every phase future resolves when its work has really been computed: a prefill when
  its tokens are in the KV cache, a partial decode when its item is complete, a decode
  when generation has ended. A bad request fails only its own future.
- Per-query state dies with ``release`` / ``abort``; abort also removes KV at once.
- ``snapshot`` is replaced (never mutated) after every step, so other threads may read it.
- ``busy_us`` counts the wall time of steps that ran a ``llama_decode`` (planning,
  decode, sampling, resolving), so `primflow profile` can time single steps.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any

from primflow.engines.base import EngineError
from primflow.engines.llm import commands as cmd
from primflow.engines.llm.config import LlamaConfig
from primflow.engines.llm.generation import Generator
from primflow.engines.llm.model import LlamaModel, check_model_path, default_model_path
from primflow.engines.llm.phases import PhaseIntake
from primflow.engines.llm.prompting import PromptBuilder
from primflow.engines.llm.quantize import requantized
from primflow.engines.llm.runner import Chunk, DecodeError, LlamaRunner
from primflow.engines.llm.scheduler import StepPlan, StepScheduler
from primflow.engines.llm.sequence import Sequence
from primflow.engines.llm.step_groups import oldest_query_start_s
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile

STAT_NAMES = (
    "num_steps",
    "num_prefilled_tokens",
    "num_reused_tokens",
    "num_prefix_hits",
    "num_decoded_tokens",
    "num_preemptions",
    "num_cached_prefixes",
    "num_requests",
    "num_cached_priors",
    "num_pad_tokens",
    "busy_us",
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


class EngineCore(PhaseIntake):
    """One engine's model, context and scheduler; driven by the llama thread (thread.py)."""

    def __init__(
        self,
        name: str,
        config: LlamaConfig,
        budget: CoreBudget | None,
        profile: LatencyProfile | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.budget = budget
        self.profile = profile or config.default_profile()
        self.budget_name = name  # the name this engine's group is busy under (thread.py)
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.snapshot = CoreSnapshot()
        self._requests: dict[str, Sequence] = {}
        self._init_priors()
        self._fixed_threads: int | None = None
        self._is_loaded = False
        self._error: Exception | None = None
        self._busy_s = 0.0

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
            self.model,
            cfg.n_ctx,
            cfg.n_batch,
            cfg.n_seq_max,
            cfg.n_threads,
            cfg.flash_attn,
            pad_rows=cfg.num_pad_rows,
            n_threads_one_token=cfg.n_threads_one_token,
        )
        self.scheduler = StepScheduler(
            num_slots=cfg.n_seq_max,
            max_num_batched_tokens=cfg.n_batch,
            kv_capacity=self.runner.kv_capacity,
            min_reuse_tokens=cfg.min_reuse_tokens,
            max_num_cached_prefixes=cfg.max_num_cached_prefixes,
            reserve_tokens=cfg.kv_reserve_tokens,
            max_speculative_tokens_per_step=cfg.max_speculative_tokens_per_step,
            is_speculation_idle_only=cfg.is_speculation_idle_only,
            max_num_seqs_per_step=cfg.max_num_seqs_per_step,
            default_policy=cfg.default_policy,
            cross_query_batching=cfg.cross_query_batching,
            profile=self.profile,
        )
        max_seq_tokens = min(self.runner.n_ctx_seq, self.runner.kv_capacity)
        self.prompts = PromptBuilder(self.model, max_tokens=max_seq_tokens - 1)
        self.generator = Generator(self.name, self.model, max_seq_tokens)
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
        elif isinstance(command, cmd.SetCrossQueryBatching):
            self.scheduler.cross_query_batching = command.mode
        elif isinstance(command, cmd.Probe):
            try:
                command.future.set_result(command.read(self))
            except Exception as err:
                command.future.set_exception(err)

    # -- one step -------------------------------------------------------------------------

    def _step(self) -> bool:
        """Run one scheduled step; False when nothing could be scheduled."""
        started_s = time.monotonic()
        self._apply_thread_budget()
        plan = self.scheduler.schedule(started_s)
        for seq, reason in plan.failures:
            self._drop(seq, EngineError(self.name, seq.decode_node or "<llm>", reason))
        for slot in plan.frees:
            self.runner.remove(slot)
        for src, dst, num_tokens in plan.copies:
            self.runner.copy_prefix(src, dst, num_tokens)
        for seq in plan.started:
            self._start_generation(seq)
        chunks = [
            Chunk(
                c.seq.slot,
                c.start,
                c.seq.tokens[c.start : c.start + c.num_tokens],
                c.wants_logits,
                self._is_padded_prompt(c.seq, c.start),
            )
            for c in plan.chunks
            if c.seq.slot is not None
        ]
        if not chunks:
            self._publish()
            self._resolve_copied(plan)
            return bool(plan.copies or plan.failures or plan.started)
        try:
            rows = self.runner.decode(chunks)
        except DecodeError as err:
            self._fail_step(plan, str(err))
            return True
        self.scheduler.update(plan)
        self._publish()  # counters first, so a resolved future never sees older stats
        self._resolve_copied(plan)
        self._after_step(plan, iter(rows))
        self._busy_s += time.monotonic() - started_s
        self._publish()
        return True

    def _is_padded_prompt(self, seq: Sequence, start: int) -> bool:
        """Prompt tokens that a one-shot prefill would compute in a step of at least
        ``pad_rows`` rows: the prompt is open (its length is not known yet) or long."""
        pad_rows = self.runner.pad_rows
        if not pad_rows or start >= seq.num_prompt_tokens:
            return False
        return not seq.is_prompt_closed or seq.num_prompt_tokens >= pad_rows

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
                "num_cached_priors": self.num_cached_priors(),
                "num_pad_tokens": self.runner.num_pad_tokens,
                "busy_us": round(self._busy_s * 1e6),
            },
        )
