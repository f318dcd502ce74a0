"""The LLM step scheduler and KV bookkeeping, without a model (pure logic; runs in the
unit tier too): continuous batching order, chunking, prefix reuse, eviction, KV limits."""

from __future__ import annotations

from primflow.engines.llm.prefix_cache import KvLedger, PrefixCache, common_prefix_len
from primflow.engines.llm.sampling import SamplingParams
from primflow.engines.llm.scheduler import MIN_LAST_CHUNK, StepPlan, StepScheduler
from primflow.engines.llm.sequence import Sequence


def seq(tokens: list[int], closed: bool = True, priority: float = 0.0, arrival_s: float = 0.0):
    return Sequence(
        request_id=f"r{id(tokens)}",
        query_id="q",
        tokens=list(tokens),
        is_prompt_closed=closed,
        priority=priority,
        arrival_s=arrival_s,
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


def test_decodes_that_do_not_fit_the_kv_cache_fail_lowest_priority_first():
    scheduler = StepScheduler(num_slots=4, max_num_batched_tokens=256, kv_capacity=61)
    high, low = seq(list(range(30)), priority=1.0), seq(list(range(100, 130)))
    for s in (high, low):
        scheduler.add(s)
    run(scheduler)
    start_decoding(high)
    start_decoding(low)
    plan = scheduler.schedule(0.0)  # 60 cells used, room for one decode token
    assert [f[0] for f in plan.failures] == [low]
    assert [c.seq for c in plan.chunks] == [high]


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
