"""The LLM engine's step planner: which tokens go into the next ``llama_decode``.

A small synchronous class in the shape of nano-vllm's: ``add`` a sequence,
``schedule(now_s)`` a step, ``update`` after it ran. No llama calls and no I/O: it
returns a :class:`StepPlan` and the engine thread applies it. Invariants:

- Order: the step takes work in the order of the sequences' batching policy (fifo,
  topology or critical_path, the one their engine scheduler runs; step_order.py). A
  sequence that cannot be admitted stops admission, so nothing later in that order
  jumps ahead of it; sequences already admitted keep computing.
- Continuous batching: every step carries one decode token of every generating
  sequence that may join it first, then prompt chunks, all within
  ``max_num_batched_tokens`` (and ``max_num_seqs_per_step`` sequences).
- Cross-query batching (step_groups.py): the first query in the order with real work
  leads the step; another query's decode token or prompt chunk joins only when
  ``cross_query_batching`` allows it: by default when the engine's step-cost profile
  predicts it saves more waiting (a step's fixed cost, for its query and the queries
  queued behind, and the decode steps a prompt then shares) than it adds to the
  queries already in the step.
- KV admission with reservation (kv_admission.py): a sequence is admitted only when its
  prompt plus its generation (``max_new_tokens``, or ``reserve_tokens`` until its decode
  phase says) fits next to what every admitted sequence may still grow to; cached
  prefixes are evicted first. A prompt that grows (full prefill) or a decode that asks
  for more than was reserved waits until the extra cells are free. So a running decode
  never runs out of cells; only a request that can never fit (prompt + max_tokens >
  ``kv_capacity``) fails. If nothing can run because sequences parked on other
  engines' work hold the cells, the last parked ones in the order give their cells
  back and are recomputed later (``preempt``): they are waiting anyway.
- Prefix reuse: an admitted sequence first copies the longest computed prefix it
  shares with a live or cached sequence (``copies``). A sequence whose prompt shares a
  longer prefix with an admitted one that is computing it waits for it instead of
  recomputing it; never for one parked with the shared tokens already computed, nor
  (a closed prompt) for a speculative one (below).
- Speculation (open prompts: partial prefills whose rest waits on other engines) runs
  only in steps that carry nothing else, at most ``max_speculative_tokens_per_step``
  tokens per step (``is_speculation_idle_only``; off, it fills spare budget as before).
  On this compute-bound CPU engine a token costs the same whenever it runs, so
  speculative tokens are worth computing only when the engine would idle.
- A closed prompt's last chunk keeps >= ``MIN_LAST_CHUNK`` tokens when it can (with
  flash attention off that keeps chunked prefill bit-identical to one-shot).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from primflow.engines.llm.kv_admission import MIN_LAST_CHUNK, KvAdmission
from primflow.engines.llm.prefix_cache import KvLedger, PrefixCache
from primflow.engines.llm.sequence import Sequence
from primflow.engines.llm.step_groups import StepGroups, check_cross_query_batching
from primflow.engines.llm.step_order import DEFAULT_POLICY, check_policy, ordered
from primflow.engines.llm.step_plan import (
    Admission,
    ScheduledChunk,
    SchedulerStats,
    StepPlan,
)
from primflow.engines.profile import LatencyProfile

__all__ = ["MIN_LAST_CHUNK", "ScheduledChunk", "SchedulerStats", "StepPlan", "StepScheduler"]

DEFAULT_RESERVE_TOKENS = 64
DEFAULT_SPECULATIVE_TOKENS_PER_STEP = 64


class StepScheduler(KvAdmission):
    def __init__(
        self,
        num_slots: int,
        max_num_batched_tokens: int,
        kv_capacity: int,
        min_reuse_tokens: int = 8,
        max_num_cached_prefixes: int = 8,
        reserve_tokens: int = DEFAULT_RESERVE_TOKENS,
        max_speculative_tokens_per_step: int = DEFAULT_SPECULATIVE_TOKENS_PER_STEP,
        is_speculation_idle_only: bool = True,
        max_num_seqs_per_step: int | None = None,
        *,
        default_policy: str = DEFAULT_POLICY,
        cross_query_batching: str = "on",
        profile: LatencyProfile | None = None,
    ) -> None:
        """``profile``: the engine's step-cost model (``cross_query_batching="cost"``);
        ``default_policy`` orders sequences that name no policy (step_order.py)."""
        _check_at_least_one(
            max_speculative_tokens_per_step=max_speculative_tokens_per_step,
            max_num_seqs_per_step=max_num_seqs_per_step,
        )
        self.max_num_batched_tokens = max_num_batched_tokens
        self.kv_capacity = kv_capacity
        self.min_reuse_tokens = min_reuse_tokens
        self.max_num_cached_prefixes = max_num_cached_prefixes
        self.reserve_tokens = reserve_tokens
        self.max_speculative_tokens_per_step = max_speculative_tokens_per_step
        self.is_speculation_idle_only = is_speculation_idle_only
        self.max_num_seqs_per_step = max_num_seqs_per_step
        self.default_policy = check_policy(default_policy)
        self.cross_query_batching = check_cross_query_batching(cross_query_batching)
        self.profile = profile or LatencyProfile.default_for("llm")
        self.live: list[Sequence] = []
        self.free_slots = list(range(num_slots - 1, -1, -1))
        self.cache = PrefixCache()
        self.ledger = KvLedger()
        self.stats = SchedulerStats()
        self._held_starts: set[Sequence] = set()  # prefilled, decode waits for its cells

    # -- queue ------------------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        self.live.append(seq)

    def has_work(self) -> bool:
        return bool(self._held_starts) or any(self._is_runnable(s) for s in self.live)

    def is_speculative(self) -> bool:
        """True when there is work and all of it is open prompts (partial prefills whose
        rest waits on other engines: speculative, off the critical path)."""
        pending = [s for s in self.live if s in self._held_starts or self._is_runnable(s)]
        return bool(pending) and not any(s.is_prompt_closed for s in pending)

    def set_max_new_tokens(self, seq: Sequence, max_new_tokens: int) -> None:
        """The first decode phase arrived: reserve its generation from now on.

        Raises ValueError when prompt + ``max_new_tokens`` can never fit the KV cache.
        """
        if seq.num_prompt_tokens + max_new_tokens > self.kv_capacity:
            raise ValueError(
                f"the prompt has {seq.num_prompt_tokens} tokens and max_tokens is "
                f"{max_new_tokens}: together more than the KV cache holds "
                f"({self.kv_capacity} cells); lower max_tokens or raise n_ctx"
            )
        seq.max_new_tokens = max_new_tokens

    def may_start(self, seq: Sequence) -> bool:
        """``seq`` is prefilled and its decode arrived: True if its cells are reserved.

        Otherwise it waits; a later plan lists it in ``started`` once they are.
        """
        if seq.slot is None:
            self._held_starts.add(seq)
            return False
        target = self._target(seq)
        if seq.num_reserved < target:
            # Grow now only if the cells are free and nobody earlier in the order waits.
            if self._is_anyone_waiting_before(seq) or self._headroom() < target - seq.num_reserved:
                self._held_starts.add(seq)
                return False
            seq.num_reserved = target
        return True

    def remove(self, seq: Sequence) -> list[int]:
        """Forget ``seq`` and free its KV; return the slots the engine must clear now."""
        if seq in self.live:
            self.live.remove(seq)
        self._held_starts.discard(seq)
        if seq.slot is None:
            return []
        slot, seq.slot = seq.slot, None
        self._free_slot(slot)
        return [slot]

    def finish(self, seq: Sequence, now_s: float) -> list[tuple[int, int]]:
        """``seq`` generated its last token: keep its prompt's KV as a cached prefix.

        Returns ``(slot, from_pos)`` ranges the engine must remove now: the generated
        tokens (rarely shared, and every cell in use widens attention for all
        sequences in a unified KV cache) or the whole slot.
        """
        if seq in self.live:
            self.live.remove(seq)
        self._held_starts.discard(seq)
        if seq.slot is None:
            return []
        slot, seq.slot = seq.slot, None
        num_kept = min(seq.num_prompt_tokens, seq.num_computed)
        if num_kept < self.min_reuse_tokens or self.max_num_cached_prefixes == 0:
            self._free_slot(slot)
            return [(slot, 0)]
        removed = [(slot, num_kept)]
        self.ledger.truncate(slot, num_kept)
        self.cache.add(slot, seq.tokens[:num_kept], seq.query_id, now_s)
        while len(self.cache) > self.max_num_cached_prefixes:
            evicted = self.cache.pop_lru()
            assert evicted is not None
            self._free_slot(evicted)
            removed.append((evicted, 0))
        return removed

    def drop_cached(self, query_id: str) -> list[int]:
        slots = self.cache.slots_of_query(query_id)
        for slot in slots:
            self.cache.remove(slot)
            self._free_slot(slot)
        return slots

    @property
    def num_used_cells(self) -> int:
        return self.ledger.num_used_cells()

    # -- schedule -----------------------------------------------------------------------

    def schedule(self, now_s: float) -> StepPlan:
        plan = StepPlan()
        blocked = self._plan(plan, now_s)
        if blocked is not None and plan.is_idle:
            preempted = self._preempt_for(blocked, plan)
            if preempted:  # they queue again, but not ahead of ``blocked`` in this step
                self._plan(plan, now_s, skip=preempted)
        return plan

    def update(self, plan: StepPlan) -> None:
        """The plan's ``llama_decode`` succeeded: its chunks are now in the KV cache."""
        self.stats.num_steps += 1
        for chunk in plan.chunks:
            seq = chunk.seq
            if seq.slot is None:  # removed while the step ran
                continue
            if seq.is_prefilling:
                self.stats.num_prefilled_tokens += chunk.num_tokens
            else:
                self.stats.num_decoded_tokens += chunk.num_tokens
            seq.num_computed += chunk.num_tokens
            self.ledger.extend(seq.slot, chunk.num_tokens)

    # -- planning -----------------------------------------------------------------------

    def _plan(
        self, plan: StepPlan, now_s: float, skip: AbstractSet[Sequence] = frozenset()
    ) -> Sequence | None:
        """Fill ``plan``; return the first sequence that could not get its cells."""
        budget = self.max_num_batched_tokens - plan.num_tokens
        order = self._ordered()
        groups = StepGroups(self.cross_query_batching, self.profile, order)
        decoding = [
            s
            for s in order
            if s.is_generating and not s.is_prefilling and s.num_pending and s.slot is not None
        ]
        max_num_seqs = self.max_num_seqs_per_step or budget
        if not plan.chunks:
            budget -= self._schedule_decodes(plan, decoding, groups, min(budget, max_num_seqs))
        is_decoding = set(decoding)
        blocked: Sequence | None = None
        speculative: list[Sequence] = []
        for seq in order:
            if seq in is_decoding or seq in skip:
                continue
            if seq.is_prompt_closed and not groups.admits(seq, self._chunk_size(seq, budget)):
                continue  # another query's real work: it waits for a step of its own
            if blocked is None:
                admission = self._grant(seq, plan, now_s)
                if admission is Admission.BLOCKED:
                    blocked = seq
                if admission is not Admission.ADMITTED:
                    continue
            elif seq.slot is None or seq.num_reserved < self._target(seq):
                continue  # admitted before the blocked one, or waiting behind it
            if not seq.is_prefilling or budget <= 0:
                continue
            if seq.is_prompt_closed:
                if len(plan.chunks) >= max_num_seqs:
                    continue  # a narrow step: every token attends over every live sequence
                budget -= self._schedule_chunk(seq, plan, budget)
                groups.join(seq)
            else:
                speculative.append(seq)
        self._schedule_speculative(plan, speculative, budget)
        return blocked

    def _ordered(self) -> list[Sequence]:
        return ordered(self.live, self.default_policy)

    def _schedule_speculative(self, plan: StepPlan, seqs: list[Sequence], budget: int) -> None:
        """Open prompts (partial prefills) are speculative: their rest waits on other
        engines, so they are off the critical path. On a compute-bound engine every token
        in a step delays the step, so they run only in steps with nothing else to do
        (``is_speculation_idle_only``) and in small steps, so a deferral or new urgent
        work is seen again within ``max_speculative_tokens_per_step`` tokens."""
        if self.is_speculation_idle_only and plan.chunks:
            return
        budget = min(budget, self.max_speculative_tokens_per_step)
        for seq in seqs:
            if budget <= 0:
                break
            budget -= self._schedule_chunk(seq, plan, budget)

    def _chunk_size(self, seq: Sequence, budget: int) -> int:
        """How many prompt tokens of ``seq`` a step with ``budget`` tokens left takes."""
        remaining = seq.num_prompt_tokens - seq.num_computed
        size = min(remaining, budget)
        left = remaining - size
        if seq.is_prompt_closed and 0 < left < MIN_LAST_CHUNK and size > MIN_LAST_CHUNK:
            size -= MIN_LAST_CHUNK - left
        return max(size, 0)

    def _schedule_chunk(self, seq: Sequence, plan: StepPlan, budget: int) -> int:
        if any(c.seq is seq for c in plan.chunks):
            return 0
        size = self._chunk_size(seq, budget)
        wants_logits = seq.is_prompt_closed and seq.num_computed + size == seq.num_prompt_tokens
        plan.chunks.append(ScheduledChunk(seq, seq.num_computed, size, wants_logits))
        return size

    def _schedule_decodes(
        self, plan: StepPlan, decoding: list[Sequence], groups: StepGroups, max_num_seqs: int
    ) -> int:
        """One token of each decoding sequence that may join, in the order, up to
        ``max_num_seqs``; returns the tokens scheduled."""
        joining: list[Sequence] = []
        for seq in decoding:
            if len(joining) >= max_num_seqs:
                break
            if groups.admits(seq, num_tokens=1):
                joining.append(seq)
                groups.join(seq)
        # Reservations make this a safety net: a generating sequence holds its cells.
        while len(joining) > self._free_cells(plan) and self._evict_one(plan) is not None:
            pass
        while len(joining) > self._free_cells(plan):
            victim = joining.pop()  # last in the order
            plan.failures.append((victim, f"KV cache full ({self.kv_capacity} cells)"))
        for seq in joining:
            plan.chunks.append(ScheduledChunk(seq, seq.num_computed, 1, wants_logits=True))
        return len(joining)

    def _is_runnable(self, seq: Sequence) -> bool:
        return seq.is_prefilling or (seq.is_generating and seq.num_pending > 0)


def _check_at_least_one(**limits: int | None) -> None:
    """Each limit is None (unlimited) or >= 1; raises ValueError naming the first bad one."""
    for name, value in limits.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
