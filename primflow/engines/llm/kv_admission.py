"""KV-cache admission for the LLM step scheduler: reservations, eviction, preemption.

Owns the arithmetic of the unified KV cache that :class:`~.scheduler.StepScheduler`
plans steps against (the scheduler inherits it; the split keeps the step planning
readable). Invariants:

- A sequence's *target* is its prompt plus its generation (``max_new_tokens`` once its
  decode phase said it, else ``reserve_tokens``); its reservation never exceeds it.
- Headroom = capacity - cells in use - cells admitted sequences may still add; a
  reservation grows only into headroom, after evicting cached prefixes (LRU) that no
  copy of the current step reads.
- Preemption only takes cells back from *parked* sequences (open prompts computed so
  far, or sequences waiting to grow) that have generated nothing: they are waiting on
  other engines anyway and are recomputed when admitted again.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from primflow.engines.llm.prefix_cache import KvLedger, PrefixCache
from primflow.engines.llm.sequence import Sequence
from primflow.engines.llm.step_plan import SchedulerStats, StepPlan


class KvAdmission:
    """The KV half of the step scheduler; the state below is set by its ``__init__``."""

    kv_capacity: int
    reserve_tokens: int
    live: list[Sequence]
    free_slots: list[int]
    cache: PrefixCache
    ledger: KvLedger
    stats: SchedulerStats
    _held_starts: set[Sequence]

    def _target(self, seq: Sequence) -> int:
        """The length ``seq`` may grow to: its prompt plus its generation."""
        if seq.max_new_tokens is not None:
            return seq.num_prompt_tokens + seq.max_new_tokens
        return min(seq.num_prompt_tokens + self.reserve_tokens, self.kv_capacity)

    def _num_promised_cells(self) -> int:
        """Cells admitted sequences may still add (reserved, not computed yet)."""
        return sum(max(0, s.num_reserved - s.num_computed) for s in self.live if s.slot is not None)

    def _headroom(self) -> int:
        return self.kv_capacity - self.ledger.num_used_cells() - self._num_promised_cells()

    def _make_room(
        self, num_cells: int, plan: StepPlan, keep: AbstractSet[int] = frozenset()
    ) -> bool:
        """Evict cached prefixes until ``num_cells`` more can be reserved."""
        while self._headroom() < num_cells:
            if self._evict_one(plan, keep) is None:
                return False
        return True

    def _free_cells(self, plan: StepPlan) -> int:
        return self.kv_capacity - self.ledger.num_used_cells() - plan.num_tokens

    def _preempt_for(self, blocked: Sequence, plan: StepPlan) -> set[Sequence]:
        """Nothing can run: take the cells back from the newest parked sequences (open
        prompts waiting for their rest, or sequences waiting to grow) until ``blocked``
        fits. They are recomputed when admitted again. Returns the preempted ones."""
        parked = [
            s
            for s in sorted(self.live, key=lambda s: s.order_key, reverse=True)
            if s is not blocked
            and s.slot is not None
            and s.slot not in {src for src, _, _ in plan.copies}
            and s.num_generated == 0
            and self._is_parked(s)
        ]
        num_needed = self._target(blocked) - (
            blocked.num_reserved if blocked.slot is not None else 0
        )
        preempted: set[Sequence] = set()
        for seq in parked:
            if self._headroom() >= num_needed and (blocked.slot is not None or self.free_slots):
                break
            self._preempt(seq, plan)
            preempted.add(seq)
        return preempted

    def _is_anyone_waiting_before(self, seq: Sequence) -> bool:
        return any(
            other.order_key < seq.order_key
            and (
                (other.slot is None and other.is_prefilling)
                or (other.slot is not None and other.num_reserved < self._target(other))
            )
            for other in self.live
        )

    def _is_parked(self, seq: Sequence) -> bool:
        is_open_and_computed = not seq.is_prompt_closed and not seq.is_prefilling
        return is_open_and_computed or seq.num_reserved < self._target(seq)

    def _preempt(self, seq: Sequence, plan: StepPlan) -> None:
        assert seq.slot is not None
        slot, seq.slot = seq.slot, None
        self._free_slot(slot)
        plan.frees.append(slot)
        seq.num_computed = seq.num_reused = seq.num_reserved = 0
        seq.last_logits = None
        self._held_starts.discard(seq)
        self.stats.num_preemptions += 1

    def _take_slot(self, plan: StepPlan, keep: AbstractSet[int] = frozenset()) -> int | None:
        if not self.free_slots and self._evict_one(plan, keep) is None:
            return None
        return self.free_slots.pop()

    def _evict_one(self, plan: StepPlan, keep: AbstractSet[int] = frozenset()) -> int | None:
        """Evict the least recently used cached prefix that no copy of this step reads."""
        slot = self.cache.pop_lru(keep={src for src, _, _ in plan.copies} | set(keep))
        if slot is None:
            return None
        self._free_slot(slot)
        plan.frees.append(slot)
        return slot

    def _free_slot(self, slot: int) -> None:
        self.ledger.drop(slot)
        self.free_slots.append(slot)
