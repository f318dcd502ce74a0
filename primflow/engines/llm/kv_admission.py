"""Admission to the LLM's KV cache: reservations, prefix reuse, eviction, preemption.

Owns how a sequence gets (and keeps) its cells in the unified KV cache that
:class:`~.scheduler.StepScheduler` plans steps against (the scheduler inherits it; the
split keeps step planning apart from admission). Invariants:

- A sequence's *target* is its prompt plus its generation (``max_new_tokens`` once its
  decode phase said it, else ``reserve_tokens``); its reservation never exceeds it.
- Headroom = capacity - cells in use - cells admitted sequences may still add; a
  reservation grows only into headroom, after evicting cached prefixes (LRU) that no
  copy of the current step reads.
- An admitted sequence first copies the longest computed prefix it shares with a live
  or cached sequence; it waits instead for an admitted one computing a longer shared
  prefix right now, never for one parked (see ``_should_wait_for_prefix``).
- Preemption only takes cells back from *parked* sequences (open prompts computed so
  far, or sequences waiting to grow) that have generated nothing: they are waiting on
  other engines anyway and are recomputed when admitted again. The last in the step
  order (``_ordered``) go first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from primflow.engines.llm.prefix_cache import (
    KvLedger,
    PrefixCache,
    PrefixMatch,
    best_match,
    common_prefix_len,
)
from primflow.engines.llm.sequence import Sequence
from primflow.engines.llm.step_plan import Admission, SchedulerStats, StepPlan

# A closed prompt's last chunk keeps >= this many tokens when it can (with flash
# attention off that keeps chunked prefill bit-identical to one-shot).
MIN_LAST_CHUNK = 8


class KvAdmission(ABC):
    """The KV half of the step scheduler; the state below is set by its ``__init__``."""

    kv_capacity: int
    reserve_tokens: int
    min_reuse_tokens: int
    is_speculation_idle_only: bool
    live: list[Sequence]
    free_slots: list[int]
    cache: PrefixCache
    ledger: KvLedger
    stats: SchedulerStats
    _held_starts: set[Sequence]

    @abstractmethod
    def _ordered(self) -> list[Sequence]:
        """The live sequences in the step order (the scheduler's batching policy)."""

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
            for s in reversed(self._ordered())
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
        for other in self._ordered():
            if other is seq:
                return False
            if (other.slot is None and other.is_prefilling) or (
                other.slot is not None and other.num_reserved < self._target(other)
            ):
                return True
        return False

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

    def _grant(self, seq: Sequence, plan: StepPlan, now_s: float) -> Admission:
        """Admit ``seq``, or grow its reservation to what it now needs."""
        if seq.slot is None:
            return self._admit(seq, plan, now_s)
        target = self._target(seq)
        if seq.num_reserved < target:
            if not self._make_room(target - seq.num_reserved, plan):
                return Admission.BLOCKED
            seq.num_reserved = target
        if seq in self._held_starts:
            self._held_starts.discard(seq)
            plan.started.append(seq)
        return Admission.ADMITTED

    def _admit(self, seq: Sequence, plan: StepPlan, now_s: float) -> Admission:
        """Give ``seq`` a slot, reserve its cells and copy the longest reusable prefix."""
        if seq.num_prompt_tokens > self.kv_capacity:
            plan.failures.append(
                (
                    seq,
                    f"prompt of {seq.num_prompt_tokens} tokens exceeds the "
                    f"KV cache ({self.kv_capacity} cells)",
                )
            )
            return Admission.DEFERRED
        match = self._reusable_prefix(seq)
        if self._should_wait_for_prefix(seq, match):
            return Admission.DEFERRED
        target = self._target(seq)
        keep = {match.slot} if match.num_tokens else set()
        if not self._make_room(target - match.num_tokens, plan, keep):
            return Admission.BLOCKED
        slot = self._take_slot(plan, keep)
        if slot is None:
            return Admission.BLOCKED
        seq.slot = slot
        seq.num_reserved = target
        if match.num_tokens:
            plan.copies.append((match.slot, slot, match.num_tokens))
            self.ledger.share(match.slot, slot, match.num_tokens)
            self.cache.touch(match.slot, now_s)
            seq.num_computed = seq.num_reused = match.num_tokens
            self.stats.num_prefix_hits += 1
            self.stats.num_reused_tokens += match.num_tokens
        return Admission.ADMITTED

    def _reusable_prefix(self, seq: Sequence) -> PrefixMatch:
        prompt = seq.tokens[: seq.num_prompt_tokens]
        match = best_match(prompt, self._computed_prefixes(exclude=seq))
        limit = seq.num_prompt_tokens
        if seq.is_prompt_closed:  # compute >= MIN_LAST_CHUNK tokens to get exact logits
            limit -= MIN_LAST_CHUNK
        num_tokens = min(match.num_tokens, limit)
        if num_tokens < self.min_reuse_tokens:
            return PrefixMatch(slot=-1, num_tokens=0)
        return PrefixMatch(match.slot, num_tokens)

    def _computed_prefixes(self, exclude: Sequence) -> Iterable[tuple[int, list[int]]]:
        for other in self.live:
            if other is not exclude and other.slot is not None and other.num_computed:
                yield other.slot, other.tokens[: other.num_computed]
        for entry in self.cache.entries():
            yield entry.slot, entry.tokens

    def _should_wait_for_prefix(self, seq: Sequence, match: PrefixMatch) -> bool:
        """An admitted sequence is computing (now, with its cells reserved) a longer
        prefix shared with ``seq``. Never one parked or waiting for cells: the wait
        could last as long as that sequence's other inputs take."""
        prompt = seq.tokens[: seq.num_prompt_tokens]
        for other in self.live:
            if other is seq or other.slot is None or not other.is_prefilling:
                continue
            if (
                self.is_speculation_idle_only
                and seq.is_prompt_closed
                and not other.is_prompt_closed
            ):
                continue  # it only runs when the engine idles: compute the prefix now
            if other.num_reserved < self._target(other):
                continue
            shared = common_prefix_len(prompt, other.tokens[: other.num_prompt_tokens])
            if shared >= match.num_tokens + self.min_reuse_tokens and other.num_computed < shared:
                return True
        return False
