"""The LLM step scheduler's speculation and cross-query batching "off", without a model
(pure logic; runs in the unit tier too): open prompts run only in idle steps and in
small steps; with cross-query batching off one step carries the real work of the oldest
query only."""

from __future__ import annotations

import pytest
from test_llm_scheduler import run, seq, start_decoding

from primflow.engines.llm.scheduler import StepScheduler
from primflow.engines.llm.sequence import Sequence
from primflow.engines.llm.step_groups import oldest_query_start_s


def test_open_prompts_run_only_when_the_engine_would_idle_in_small_steps():
    scheduler = StepScheduler(
        num_slots=4,
        max_num_batched_tokens=256,
        kv_capacity=1024,
        max_speculative_tokens_per_step=16,
    )
    urgent = seq(list(range(100, 140)), query_start_s=1.0)  # closed: on the critical path
    speculative = seq(list(range(200, 300)), closed=False, query_start_s=0.0)  # older query
    scheduler.add(urgent)
    scheduler.add(speculative)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == [urgent]  # the older query's speculation waits
    start_decoding(urgent)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == [urgent]  # a decode step is not idle either
    scheduler.finish(urgent, now_s=1.0)
    sizes = [run(scheduler).num_tokens for _ in range(3)]
    assert sizes == [16, 16, 16]  # idle: speculation in steps of at most 16 tokens
    assert speculative.num_computed == 48


def test_speculation_fills_spare_budget_when_not_idle_only():
    scheduler = StepScheduler(
        num_slots=4,
        max_num_batched_tokens=256,
        kv_capacity=1024,
        is_speculation_idle_only=False,
        max_speculative_tokens_per_step=32,
    )
    urgent = seq(list(range(100, 140)))
    speculative = seq(list(range(200, 300)), closed=False)
    scheduler.add(urgent)
    scheduler.add(speculative)
    plan = run(scheduler)
    assert [(c.seq, c.num_tokens) for c in plan.chunks] == [(urgent, 40), (speculative, 32)]


def test_a_closed_prompt_does_not_wait_for_a_speculative_owner_of_its_prefix():
    """The owner's open prompt runs only when the engine idles, so a closed prompt
    sharing its prefix computes the prefix itself instead of waiting behind it."""
    scheduler = StepScheduler(
        num_slots=4, max_num_batched_tokens=256, kv_capacity=1024, max_speculative_tokens_per_step=8
    )
    instruction = list(range(100, 140))
    owner = seq(instruction, closed=False)
    scheduler.add(owner)
    run(scheduler)  # idle: the owner computes 8 tokens of its prompt
    assert owner.num_computed == 8
    follower = seq([*instruction, *range(300, 310)])
    scheduler.add(follower)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == [follower]
    assert follower.num_computed == len(follower.tokens)


def test_max_speculative_tokens_per_step_must_be_positive():
    with pytest.raises(ValueError, match="max_speculative_tokens_per_step"):
        StepScheduler(
            num_slots=1,
            max_num_batched_tokens=64,
            kv_capacity=64,
            max_speculative_tokens_per_step=0,
        )


def _query_seq(query_id: str, tokens: list[int], query_start_s: float | None) -> Sequence:
    return Sequence(
        request_id=f"{query_id}/{tokens[0]}",
        query_id=query_id,
        tokens=list(tokens),
        is_prompt_closed=True,
        query_start_s=query_start_s,
    )


def test_one_query_per_step_runs_the_oldest_query_first():
    scheduler = StepScheduler(
        num_slots=8, max_num_batched_tokens=256, kv_capacity=4096, cross_query_batching="off"
    )
    old = [
        _query_seq("old", list(range(100, 130)), 1.0),
        _query_seq("old", [*range(200, 220)], 1.0),
    ]
    new = _query_seq("new", list(range(300, 340)), 2.0)
    for s in (new, *old):
        scheduler.add(s)
    plan = run(scheduler)
    assert {c.seq for c in plan.chunks} == set(old)  # both calls of the oldest query batch
    for s in old:
        start_decoding(s)
    plan = run(scheduler)
    assert {c.seq for c in plan.chunks} == set(old)  # the new query waits for its own step
    for s in old:
        scheduler.finish(s, now_s=1.0)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == [new]


def test_requests_without_a_query_start_share_steps_as_plain_continuous_batching():
    scheduler = StepScheduler(
        num_slots=8, max_num_batched_tokens=256, kv_capacity=4096, cross_query_batching="off"
    )
    plain = [_query_seq(f"q{i}", list(range(100 * i, 100 * i + 20)), None) for i in (1, 2, 3)]
    for s in plain:
        scheduler.add(s)
    plan = run(scheduler)
    assert {c.seq for c in plan.chunks} == set(plain)


def test_speculation_of_any_query_still_fills_an_idle_step():
    scheduler = StepScheduler(
        num_slots=8, max_num_batched_tokens=256, kv_capacity=4096, cross_query_batching="off"
    )
    spec = Sequence(
        request_id="new/open",
        query_id="new",
        tokens=list(range(300, 340)),
        is_prompt_closed=False,
        query_start_s=2.0,
    )
    scheduler.add(spec)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == [spec]


def test_cross_query_batching_must_be_a_known_mode():
    with pytest.raises(ValueError, match="cross_query_batching"):
        StepScheduler(
            num_slots=1, max_num_batched_tokens=64, kv_capacity=64, cross_query_batching="two"
        )


def test_a_step_carries_at_most_max_num_seqs_per_step_sequences():
    scheduler = StepScheduler(
        num_slots=16, max_num_batched_tokens=512, kv_capacity=8192, max_num_seqs_per_step=2
    )
    calls = [seq(list(range(100 * i, 100 * i + 20)), arrival_s=float(i)) for i in range(1, 5)]
    for s in calls:
        scheduler.add(s)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == calls[:2]  # the oldest two, whole
    for s in calls[:2]:
        start_decoding(s)
    plan = run(scheduler)
    assert [c.seq for c in plan.chunks] == calls[:2]  # their decodes fill the step
    with pytest.raises(ValueError, match="max_num_seqs_per_step"):
        StepScheduler(
            num_slots=1, max_num_batched_tokens=64, kv_capacity=64, max_num_seqs_per_step=0
        )


def test_oldest_query_start_counts_real_work_of_queries_that_say_when():
    closed_young = _query_seq("young", list(range(10, 20)), 5.0)
    open_old = _query_seq("old", list(range(30, 40)), 1.0)
    open_old.is_prompt_closed = False  # speculative: not real work
    unsaid = _query_seq("baseline", list(range(50, 60)), None)
    for s in (closed_young, open_old, unsaid):
        s.num_prompt_tokens = len(s.tokens)  # still prefilling
    assert oldest_query_start_s([closed_young, open_old, unsaid]) == 5.0
    open_old.is_prompt_closed = True
    assert oldest_query_start_s([closed_young, open_old, unsaid]) == 1.0
    assert oldest_query_start_s([unsaid]) is None and oldest_query_start_s([]) is None
