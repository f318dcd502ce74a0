"""The LLM step scheduler and KV bookkeeping, without a model (pure logic; runs in the
unit tier too): continuous batching order, chunking, prefix reuse, eviction, KV limits."""

from __future__ import annotations

import pytest

from primflow.engines.llm.prefix_cache import KvLedger, PrefixCache, common_prefix_len
from primflow.engines.llm.sampling import SamplingParams
from primflow.engines.llm.scheduler import MIN_LAST_CHUNK, StepPlan, StepScheduler
from primflow.engines.llm.sequence import Sequence


def seq(
    tokens: list[int],
    closed: bool = True,
    priority: float = 0.0,
    arrival_s: float = 0.0,
    query_start_s: float = 0.0,
) -> Sequence:
    return Sequence(
        request_id=f"r{id(tokens)}",
        query_id="q",
        tokens=list(tokens),
        is_prompt_closed=closed,
        priority=priority,
        arrival_s=arrival_s,
        query_start_s=query_start_s,
    )


def run(scheduler: StepScheduler, now_s: float = 0.0) -> StepPlan:
    plan = scheduler.schedule(now_s)
    scheduler.update(plan)
    return plan


def start_decoding(s: Sequence, next_token: int = 7) -> None:
    """What the engine does after the prompt's logits: sample and append one token."""
    s.sampling = SamplingParams()
    s.tokens.append(next_token)


def test_decode_tokens_come_first_then_prompt_chunks_by_priority():
    scheduler = StepScheduler(num_slots=4, max_num_batched_tokens=64, kv_capacity=1024)
    running = seq(list(range(100, 120)))
    scheduler.add(running)
    run(scheduler)
    start_decoding(running)
    low = seq(list(range(200, 240)), priority=0.0, arrival_s=1.0)
    high = seq(list(range(300, 340)), priority=5.0, arrival_s=2.0)
    scheduler.add(low)
    scheduler.add(high)
    plan = scheduler.schedule(3.0)
    assert [(c.seq, c.num_tokens) for c in plan.chunks] == [(running, 1), (high, 40), (low, 23)]
    assert plan.num_tokens == 64
    assert plan.chunks[0].wants_logits and plan.chunks[1].wants_logits
    assert not plan.chunks[2].wants_logits  # low's prompt is not finished in this step


def test_last_chunk_keeps_at_least_min_tokens():
    scheduler = StepScheduler(num_slots=2, max_num_batched_tokens=32, kv_capacity=1024)
    s = seq(list(range(35)))  # 32 + 3 would leave a 3-token last chunk
    scheduler.add(s)
    sizes = [run(scheduler).chunks[0].num_tokens for _ in range(2)]
    assert sizes == [35 - MIN_LAST_CHUNK, MIN_LAST_CHUNK]


def test_open_prompt_is_computed_without_logits_and_parks():
    scheduler = StepScheduler(num_slots=2, max_num_batched_tokens=64, kv_capacity=1024)
    s = seq(list(range(20)), closed=False)
    scheduler.add(s)
    plan = run(scheduler)
    assert plan.chunks[0].num_tokens == 20 and not plan.chunks[0].wants_logits
    assert not scheduler.has_work()
    s.append_prompt(list(range(20, 40)), is_last=True)
    plan = run(scheduler)
    assert (plan.chunks[0].start, plan.chunks[0].num_tokens) == (20, 20)
    assert plan.chunks[0].wants_logits


def test_shared_prefix_is_copied_not_recomputed():
    scheduler = StepScheduler(num_slots=4, max_num_batched_tokens=256, kv_capacity=1024)
    doc = list(range(1000, 1100))
    first = seq([*doc, 1, 2, 3])
    scheduler.add(first)
    run(scheduler)
    second = seq([*doc, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    scheduler.add(second)
    plan = run(scheduler)
    assert plan.copies == [(first.slot, second.slot, 100)]
    assert plan.chunks[0].start == 100 and plan.chunks[0].num_tokens == 9
    assert scheduler.stats.num_reused_tokens == 100
    assert scheduler.ledger.num_used_cells() == 103 + 9  # the document is stored once


def test_reuse_leaves_a_full_last_chunk_for_exact_logits():
    scheduler = StepScheduler(num_slots=4, max_num_batched_tokens=256, kv_capacity=1024)
    prompt = list(range(50))
    scheduler.add(seq(prompt))
    run(scheduler)
    again = seq(prompt)  # identical prompt: still computes MIN_LAST_CHUNK tokens
    scheduler.add(again)
    plan = run(scheduler)
    assert plan.copies[0][2] == 50 - MIN_LAST_CHUNK
    assert plan.chunks[0].num_tokens == MIN_LAST_CHUNK


def test_concurrent_requests_wait_for_a_shared_prefix_being_computed():
    scheduler = StepScheduler(num_slots=4, max_num_batched_tokens=512, kv_capacity=4096)
    doc = list(range(5000, 5200))
    a, b = seq(doc + [1] * 10), seq(doc + [2] * 10)
    scheduler.add(a)
    scheduler.add(b)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == [a]  # b waits instead of recomputing the doc
    plan = run(scheduler)
    assert plan.copies == [(a.slot, b.slot, 200)]
    assert scheduler.stats.num_prefilled_tokens == 210 + 10


def test_finished_sequences_become_cached_prefixes_and_are_evicted_for_slots():
    scheduler = StepScheduler(num_slots=2, max_num_batched_tokens=256, kv_capacity=1024)
    a, b = seq(list(range(40))), seq(list(range(100, 140)))
    for s in (a, b):
        scheduler.add(s)
    run(scheduler)
    slot_a, slot_b = a.slot, b.slot
    a.tokens.append(9)  # one generated token, never fed back
    assert scheduler.finish(a, now_s=1.0) == [(slot_a, 40)]
    assert scheduler.finish(b, now_s=2.0) == [(slot_b, 40)]
    assert len(scheduler.cache) == 2
    c = seq(list(range(200, 240)))
    scheduler.add(c)
    plan = run(scheduler, now_s=3.0)
    assert plan.frees == [slot_a]  # least recently used first
    assert c.slot == slot_a


def test_finished_sequences_keep_only_their_prompt_and_the_cache_is_bounded():
    scheduler = StepScheduler(
        num_slots=4, max_num_batched_tokens=256, kv_capacity=1024, max_num_cached_prefixes=1
    )
    a, b = seq(list(range(20))), seq(list(range(100, 130)))
    for s in (a, b):
        scheduler.add(s)
    run(scheduler)
    start_decoding(a)
    run(scheduler)  # a's first generated token is now in the KV cache too
    start_decoding(a, next_token=8)
    slot_a, slot_b = a.slot, b.slot
    assert scheduler.finish(a, now_s=1.0) == [(slot_a, 20)]  # generated tokens dropped
    assert scheduler.ledger.num_used_cells() == 20 + 30
    assert scheduler.finish(b, now_s=2.0) == [(slot_b, 30), (slot_a, 0)]  # over the bound
    assert scheduler.ledger.num_used_cells() == 30 and len(scheduler.cache) == 1


def test_a_second_decode_waits_for_cells_instead_of_failing_the_first():
    scheduler = StepScheduler(
        num_slots=4, max_num_batched_tokens=256, kv_capacity=61, reserve_tokens=1
    )
    first, second = seq(list(range(30)), priority=1.0), seq(list(range(100, 130)))
    for s in (first, second):
        scheduler.add(s)
    run(scheduler)  # both prompts fit with 1 reserved cell each
    for s in (first, second):
        scheduler.set_max_new_tokens(s, 20)
    assert scheduler.may_start(first)  # 60 used: first grows to 50 cells, 11 left
    assert not scheduler.may_start(second)  # second's decode is held, not failed
    start_decoding(first)
    plan = run(scheduler)
    assert plan.failures == [] and [c.seq for c in plan.chunks] == [first]
    assert second not in plan.started


def test_a_prompt_is_admitted_only_when_it_fits_and_nothing_jumps_the_queue():
    scheduler = StepScheduler(num_slots=4, max_num_batched_tokens=256, kv_capacity=50)
    holder = seq(list(range(500, 510)))
    scheduler.add(holder)
    run(scheduler)  # 10 cells used
    big, small = seq(list(range(45)), priority=1.0), seq(list(range(100, 110)))
    scheduler.add(big)
    scheduler.add(small)
    plan = scheduler.schedule(0.0)
    assert plan.chunks == [] and big.slot is None and small.slot is None
    scheduler.remove(holder)
    assert [c.seq for c in scheduler.schedule(0.0).chunks] == [big]


def test_a_prompt_longer_than_the_kv_cache_fails():
    scheduler = StepScheduler(num_slots=2, max_num_batched_tokens=256, kv_capacity=50)
    too_long, fine = seq(list(range(80))), seq(list(range(100, 110)))
    scheduler.add(too_long)
    scheduler.add(fine)
    plan = scheduler.schedule(0.0)
    assert [f[0] for f in plan.failures] == [too_long]
    assert [c.seq for c in plan.chunks] == [fine]


def test_remove_frees_the_slot_and_cells():
    scheduler = StepScheduler(num_slots=1, max_num_batched_tokens=64, kv_capacity=1024)
    s = seq(list(range(30)))
    scheduler.add(s)
    run(scheduler)
    assert scheduler.remove(s) == [0] and scheduler.ledger.num_used_cells() == 0
    assert scheduler.free_slots == [0] and not scheduler.has_work()


def test_ledger_counts_shared_cells_once_and_frees_them_last():
    ledger = KvLedger()
    ledger.extend(0, 100)
    ledger.share(0, 1, 60)
    ledger.extend(1, 10)
    assert ledger.num_used_cells() == 110 and ledger.num_cells(1) == 70
    ledger.drop(0)
    assert ledger.num_used_cells() == 70  # seq 1 still holds the shared 60 cells
    ledger.drop(1)
    assert ledger.num_used_cells() == 0


def test_prefix_cache_lru_and_keep():
    cache = PrefixCache()
    cache.add(3, [1, 2], "q1", 0.0)
    cache.add(5, [1, 3], "q2", 1.0)
    cache.touch(3, 2.0)
    assert cache.pop_lru(keep={5}) == 3 and cache.pop_lru() == 5 and cache.pop_lru() is None
    assert common_prefix_len([1, 2, 3], [1, 2, 4]) == 2


def drive(scheduler: StepScheduler, max_new_tokens: int, max_num_steps: int = 500) -> list[str]:
    """Run the scheduler like the engine thread: a prefilled prompt's decode arrives at
    once and takes its first token; each decode step appends one token. Returns the
    failures; checks the KV cache never overflows."""
    failures: list[str] = []
    for _ in range(max_num_steps):
        if not scheduler.has_work():
            break
        plan = scheduler.schedule(0.0)
        failures += [reason for _, reason in plan.failures]
        for failed, _ in plan.failures:
            scheduler.remove(failed)
        for s in plan.started:
            start_decoding(s)
        scheduler.update(plan)
        assert scheduler.ledger.num_used_cells() <= scheduler.kv_capacity
        for chunk in plan.chunks:
            s = chunk.seq
            if not chunk.wants_logits or s.slot is None:
                continue
            if not s.is_generating:
                scheduler.set_max_new_tokens(s, max_new_tokens)
                if scheduler.may_start(s):
                    start_decoding(s)
            elif s.num_generated >= max_new_tokens:
                scheduler.finish(s, 0.0)
            else:
                s.tokens.append(7)
    return failures


def test_many_requests_sharing_a_document_are_held_not_failed():
    """G's contextual_retrieval case in small: 12 calls on one document whose prompts
    and answers together need more cells than the cache has."""
    scheduler = StepScheduler(
        num_slots=16, max_num_batched_tokens=128, kv_capacity=400, reserve_tokens=8
    )
    doc = list(range(1000, 1100))
    calls = [seq([*doc, *range(2000 + 40 * i, 2020 + 40 * i)]) for i in range(12)]
    for s in calls:
        scheduler.add(s)
    assert drive(scheduler, max_new_tokens=30) == []
    assert all(s.num_generated == 30 for s in calls) and not scheduler.live
    assert scheduler.stats.num_prefix_hits >= 11  # the document was computed once


def test_a_request_that_can_never_fit_fails_with_a_clear_error():
    scheduler = StepScheduler(num_slots=2, max_num_batched_tokens=64, kv_capacity=100)
    s = seq(list(range(60)))
    scheduler.add(s)
    run(scheduler)
    with pytest.raises(ValueError, match=r"60 tokens and max_tokens is 50.*\(100 cells\)"):
        scheduler.set_max_new_tokens(s, 50)
    scheduler.set_max_new_tokens(s, 40)  # exactly fits


def test_older_queries_go_first_then_the_longer_critical_path():
    scheduler = StepScheduler(num_slots=4, max_num_batched_tokens=64, kv_capacity=1024)
    old_late_step = seq(list(range(100, 140)), priority=0.5, query_start_s=1.0)
    new_first_step = seq(list(range(200, 240)), priority=9.0, query_start_s=2.0)
    old_head = seq(list(range(300, 340)), priority=2.0, query_start_s=1.0)
    for s in (new_first_step, old_late_step, old_head):
        scheduler.add(s)
    plan = scheduler.schedule(0.0)
    assert [(c.seq, c.num_tokens) for c in plan.chunks] == [(old_head, 40), (old_late_step, 24)]


def test_parked_open_prompts_give_their_cells_back_when_nothing_can_run():
    scheduler = StepScheduler(
        num_slots=4, max_num_batched_tokens=256, kv_capacity=100, reserve_tokens=10
    )
    parked = seq(list(range(50)), closed=False, query_start_s=0.0)  # waits for its rest
    scheduler.add(parked)
    run(scheduler)
    assert not parked.is_prefilling and parked.num_reserved == 60
    blocked = seq(list(range(200, 250)), query_start_s=1.0)  # needs 60 cells, 40 free
    scheduler.add(blocked)
    plan = run(scheduler)
    assert plan.frees == [0] and parked.slot is None and parked.num_computed == 0
    assert [c.seq for c in plan.chunks] == [blocked]
    assert scheduler.stats.num_preemptions == 1
    scheduler.finish(blocked, 0.0)  # frees its cells: the parked prompt is recomputed
    parked.append_prompt([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], is_last=True)
    plan = run(scheduler)
    assert [(c.seq, c.start, c.num_tokens) for c in plan.chunks] == [(parked, 0, 60)]


def test_never_waits_for_a_prefix_owner_that_is_waiting_for_cells():
    """The owner's partial prefill is done but its rest waits for KV cells (a later
    phase): a sequence sharing the prefix copies what is computed instead of waiting."""
    scheduler = StepScheduler(
        num_slots=4,
        max_num_batched_tokens=256,
        kv_capacity=200,
        reserve_tokens=10,
        is_speculation_idle_only=False,  # the open prompt runs beside the closed one
        max_speculative_tokens_per_step=256,
    )
    instruction = list(range(100, 140))
    owner = seq(instruction, closed=False, query_start_s=1.0)
    holder = seq(list(range(500, 580)), query_start_s=1.0)  # holds most cells
    for s in (owner, holder):
        scheduler.add(s)
    run(scheduler)  # owner parked at 40 (reserved 50); holder 80 (reserved 90): 60 free
    owner.append_prompt(list(range(300, 370)), is_last=True)  # needs 70 more: must wait
    # An older query's call sharing the instruction and 10 tokens of the owner's rest.
    follower = seq([*instruction, *range(300, 310)], closed=False, query_start_s=0.0)
    scheduler.add(follower)
    plan = run(scheduler)
    assert owner.num_computed == 40 and owner not in [c.seq for c in plan.chunks]
    assert plan.copies == [(owner.slot, follower.slot, 40)]
    assert [(c.seq, c.start, c.num_tokens) for c in plan.chunks] == [(follower, 40, 10)]
