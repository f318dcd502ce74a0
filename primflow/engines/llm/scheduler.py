"""The LLM engine's step scheduler: which tokens go into the next ``llama_decode``.

A small synchronous class in the shape of nano-vllm's: ``add`` a sequence,
``schedule(now_s)`` a step, ``update`` after it ran. No llama calls and no I/O: it
returns a :class:`StepPlan` and the engine thread applies it. Invariants:

- Continuous batching: every step carries one decode token of every generating
  sequence first, then prompt chunks, all within ``max_num_batched_tokens``.
- Prompt chunks are taken in priority order (``priority`` high first, then arrival);
  a sequence that cannot be admitted (no slot, no KV room) stops admission, so lower
  priorities never jump ahead of it.
- Prefix reuse: an admitted sequence first copies the longest computed prefix it
  shares with a live or cached sequence (``copies``). A sequence whose prompt shares a
  longer prefix with one still prefilling waits for it instead of recomputing it.
- A closed prompt's last chunk keeps >= ``MIN_LAST_CHUNK`` tokens when it can (with
  flash attention off that keeps chunked prefill bit-identical to one-shot, stack.md P5).
- KV cells never exceed ``kv_capacity``: cached prefixes are evicted first; if
  generating sequences still do not fit, the newest are failed (``failures``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from primflow.engines.llm.prefix_cache import (
    KvLedger,
    PrefixCache,
    PrefixMatch,
    best_match,
    common_prefix_len,
)
from primflow.engines.llm.sequence import Sequence

MIN_LAST_CHUNK = 8


class Admission(Enum):
    ADMITTED = "admitted"
    DEFERRED = "deferred"  # waits for another sequence to compute a shared prefix
    BLOCKED = "blocked"  # no slot free: nothing below this priority is admitted either


@dataclass(frozen=True, slots=True)
class ScheduledChunk:
    seq: Sequence
    start: int
    num_tokens: int
    wants_logits: bool


@dataclass(slots=True)
class StepPlan:
    """One step. The engine applies ``frees``, then ``copies``, then decodes ``chunks``."""

    chunks: list[ScheduledChunk] = field(default_factory=list)
    copies: list[tuple[int, int, int]] = field(default_factory=list)  # (src, dst, num_tokens)
    frees: list[int] = field(default_factory=list)
    failures: list[tuple[Sequence, str]] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(c.num_tokens for c in self.chunks)


@dataclass(slots=True)
class SchedulerStats:
    num_steps: int = 0
    num_prefilled_tokens: int = 0  # prompt tokens actually computed
    num_reused_tokens: int = 0  # prompt tokens copied from another sequence's KV
    num_prefix_hits: int = 0
    num_decoded_tokens: int = 0


class StepScheduler:
    def __init__(
        self,
        num_slots: int,
        max_num_batched_tokens: int,
        kv_capacity: int,
        min_reuse_tokens: int = 8,
        max_num_cached_prefixes: int = 8,
    ) -> None:
        self.max_num_batched_tokens = max_num_batched_tokens
        self.kv_capacity = kv_capacity
        self.min_reuse_tokens = min_reuse_tokens
        self.max_num_cached_prefixes = max_num_cached_prefixes
        self.live: list[Sequence] = []
        self.free_slots = list(range(num_slots - 1, -1, -1))
        self.cache = PrefixCache()
        self.ledger = KvLedger()
        self.stats = SchedulerStats()

    # -- queue ------------------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        self.live.append(seq)

    def has_work(self) -> bool:
        return any(self._is_runnable(s) for s in self.live)

    def remove(self, seq: Sequence) -> list[int]:
        """Forget ``seq`` and free its KV; return the slots the engine must clear now."""
        if seq in self.live:
            self.live.remove(seq)
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
        budget = self.max_num_batched_tokens
        by_priority = sorted(self.live, key=lambda s: (-s.priority, s.arrival_s, s.order))
        decoding = [
            s for s in by_priority if s.is_generating and not s.is_prefilling and s.num_pending
        ]
        budget -= self._schedule_decodes(plan, decoding[:budget])
        for seq in by_priority:
            if budget <= 0:
                break
            if not seq.is_prefilling:
                continue
            if seq.slot is None:
                admission = self._admit(seq, plan, now_s)
                if admission is Admission.BLOCKED:
                    break
                if admission is Admission.DEFERRED or not seq.is_prefilling:
                    continue
            num_tokens = self._chunk_size(seq, plan, budget)
            if num_tokens <= 0:
                break  # no KV room at this priority: admit nothing below it
            end = seq.num_computed + num_tokens
            wants_logits = seq.is_prompt_closed and end == seq.num_prompt_tokens
            plan.chunks.append(ScheduledChunk(seq, seq.num_computed, num_tokens, wants_logits))
            budget -= num_tokens
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

    # -- helpers ----------------------------------------------------------------------

    def _is_runnable(self, seq: Sequence) -> bool:
        return seq.is_prefilling or (seq.is_generating and seq.num_pending > 0)

    def _schedule_decodes(self, plan: StepPlan, decoding: list[Sequence]) -> int:
        while len(decoding) > self._free_cells(plan) and self._evict_one(plan):
            pass
        while len(decoding) > self._free_cells(plan):
            victim = decoding.pop()  # lowest priority, newest
            plan.failures.append((victim, f"KV cache full ({self.kv_capacity} cells)"))
        for seq in decoding:
            plan.chunks.append(ScheduledChunk(seq, seq.num_computed, 1, wants_logits=True))
        return len(decoding)

    def _free_cells(self, plan: StepPlan) -> int:
        return self.kv_capacity - self.ledger.num_used_cells() - plan.num_tokens

    def _chunk_size(self, seq: Sequence, plan: StepPlan, budget: int) -> int:
        remaining = seq.num_prompt_tokens - seq.num_computed
        wanted = min(remaining, budget)
        while self._free_cells(plan) < wanted and self._evict_one(plan) is not None:
            pass
        size = min(wanted, self._free_cells(plan))
        left = remaining - size
        if seq.is_prompt_closed and 0 < left < MIN_LAST_CHUNK and size > MIN_LAST_CHUNK:
            size -= MIN_LAST_CHUNK - left
        return size

    def _admit(self, seq: Sequence, plan: StepPlan, now_s: float) -> Admission:
        """Give ``seq`` a slot and copy the longest reusable prefix into it."""
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
        if not self._has_room_for(seq.num_prompt_tokens - match.num_tokens, plan):
            return Admission.BLOCKED
        slot = self._take_slot(plan)
        if slot is None:
            return Admission.BLOCKED
        seq.slot = slot
        if match.num_tokens:
            plan.copies.append((match.slot, slot, match.num_tokens))
            self.ledger.share(match.slot, slot, match.num_tokens)
            self.cache.touch(match.slot, now_s)
            seq.num_computed = seq.num_reused = match.num_tokens
            self.stats.num_prefix_hits += 1
            self.stats.num_reused_tokens += match.num_tokens
        return Admission.ADMITTED

    def _has_room_for(self, num_tokens: int, plan: StepPlan) -> bool:
        """Admit only prompts that fit next to what admitted prompts still need, so two
        half-prefilled prompts can never wait on each other for cells."""
        scheduled = {id(c.seq): c.num_tokens for c in plan.chunks}
        outstanding = sum(
            s.num_prompt_tokens - s.num_computed - scheduled.get(id(s), 0)
            for s in self.live
            if s.slot is not None and s.is_prefilling
        )
        while self._free_cells(plan) - outstanding < num_tokens:
            if self._evict_one(plan) is None:
                return False
        return True

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
        """Another admitted sequence is still computing a longer shared prefix."""
        prompt = seq.tokens[: seq.num_prompt_tokens]
        for other in self.live:
            if other is seq or other.slot is None or not other.is_prefilling:
                continue
            shared = common_prefix_len(prompt, other.tokens[: other.num_prompt_tokens])
            if shared >= match.num_tokens + self.min_reuse_tokens and other.num_computed < shared:
                return True
        return False

    def _take_slot(self, plan: StepPlan) -> int | None:
        if not self.free_slots and self._evict_one(plan) is None:
            return None
        return self.free_slots.pop()

    def _evict_one(self, plan: StepPlan) -> int | None:
        """Evict the least recently used cached prefix that no copy of this step reads."""
        slot = self.cache.pop_lru(keep={src for src, _, _ in plan.copies})
        if slot is None:
            return None
        self._free_slot(slot)
        plan.frees.append(slot)
        return slot

    def _free_slot(self, slot: int) -> None:
        self.ledger.drop(slot)
        self.free_slots.append(slot)
