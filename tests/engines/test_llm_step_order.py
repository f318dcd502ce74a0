"""The LLM step planner's order and cross-query batching, without a model (pure logic;
runs in the unit tier too): each batching policy orders a step as its own definition
says, the policy each request names wins, and the step-cost rule batches other queries'
work in only when the waiting it saves (a step's fixed cost, for the query and those
queued behind it) outweighs the time it adds to the queries in the step."""

from __future__ import annotations

import pytest
from test_llm_scheduler import run, start_decoding

from primflow.engines.base import EngineRequest
from primflow.engines.llm import commands as cmd
from primflow.engines.llm.config import LlamaConfig
from primflow.engines.llm.core import EngineCore
from primflow.engines.llm.scheduler import StepScheduler
from primflow.engines.llm.sequence import Sequence
from primflow.engines.llm.step_groups import joining_pays
from primflow.engines.llm.step_order import ordered
from primflow.engines.policies import BatchBudget, make_policy, policy_order
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Op

# A step's fixed cost dominates: another query's decode (0.2 ms) costs far less than
# the step of its own it saves (10 ms); a 40-token chunk (4.1 ms) too, 200 tokens not.
FIXED_COST = LatencyProfile(step_base_s=0.010, step_per_seq_s=0.0001, step_per_token_s=0.0001)
# Compute-bound: every token costs about the same in a shared step as alone.
COMPUTE_BOUND = LatencyProfile(step_base_s=0.0001, step_per_seq_s=0.001, step_per_token_s=0.002)


def call(
    query: str, start_s: float, arrival_s: float, depth: int, priority: float, num: int = 30
) -> Sequence:
    first = int(arrival_s * 1000)
    return Sequence(
        request_id=f"{query}/{depth}/{arrival_s}",
        query_id=query,
        tokens=list(range(first, first + num)),  # no shared prefixes
        is_prompt_closed=True,
        query_start_s=start_s,
        arrival_s=arrival_s,
        depth=depth,
        priority=priority,
    )


def scenario() -> dict[str, Sequence]:
    """Query A was submitted first but its call reached the LLM late; query B's two
    calls arrived first, the deeper one second; query C's one call came last.

    fifo (arrival): b_low, b_high, a, c. topology (Algorithm 2: queries by earliest
    arrival, B A C, one call each per round, the deepest first): b_high, a, c, b_low.
    critical_path (query start, then remaining path): a (A at 0.0), c (C at 0.5),
    b_high, b_low (B at 1.0, by priority).
    """
    return {
        "b_low": call("B", start_s=1.0, arrival_s=1.0, depth=1, priority=1.0),
        "b_high": call("B", start_s=1.0, arrival_s=2.0, depth=3, priority=3.0),
        "a": call("A", start_s=0.0, arrival_s=3.0, depth=2, priority=2.0),
        "c": call("C", start_s=0.5, arrival_s=4.0, depth=1, priority=5.0),
    }


EXPECTED = {
    "fifo": ["b_low", "b_high", "a", "c"],
    "topology": ["b_high", "a", "c", "b_low"],
    "critical_path": ["a", "c", "b_high", "b_low"],
}


@pytest.mark.parametrize("policy", list(EXPECTED))
def test_each_policy_orders_a_step_by_its_definition(policy):
    calls = scenario()
    names = {id(s): n for n, s in calls.items()}
    for s in calls.values():
        s.policy = policy  # what the engine scheduler that queued them runs
    scheduler = StepScheduler(num_slots=8, max_num_batched_tokens=512, kv_capacity=4096)
    for s in calls.values():
        scheduler.add(s)
    plan = run(scheduler)
    assert [names[id(c.seq)] for c in plan.chunks] == EXPECTED[policy]


@pytest.mark.parametrize("policy", list(EXPECTED))
def test_the_policy_decides_what_a_full_step_takes(policy):
    """A budget of 64 tokens: the first two calls in the policy's order whole, 4 tokens
    of the third; the fourth waits."""
    calls = scenario()
    names = {id(s): n for n, s in calls.items()}
    scheduler = StepScheduler(
        num_slots=8, max_num_batched_tokens=64, kv_capacity=4096, default_policy=policy
    )
    for s in calls.values():
        scheduler.add(s)  # they name no policy: the engine's default orders them
    plan = run(scheduler)
    taken = [(names[id(c.seq)], c.num_tokens) for c in plan.chunks]
    first, second, third, _ = EXPECTED[policy]
    assert taken == [(first, 30), (second, 30), (third, 4)]


def test_the_policies_order_decodes_too():
    """Two sequences per step: each policy's first two calls get the decode tokens."""
    orders = {}
    for policy in EXPECTED:
        scheduler = StepScheduler(
            num_slots=8,
            max_num_batched_tokens=512,
            kv_capacity=4096,
            max_num_seqs_per_step=2,
            default_policy=policy,
        )
        fresh = scenario()
        for s in fresh.values():
            scheduler.add(s)
        while scheduler.has_work():
            run(scheduler)
        for s in fresh.values():
            start_decoding(s)
        plan = run(scheduler)
        by_name = {id(s): n for n, s in fresh.items()}
        orders[policy] = [by_name[id(c.seq)] for c in plan.chunks]
    assert orders == {p: names_in[:2] for p, names_in in EXPECTED.items()}


def test_sequences_naming_different_policies_follow_the_engine_default():
    calls = scenario()
    calls["a"].policy = "fifo"
    calls["c"].policy = "topology"
    names = {id(s): n for n, s in calls.items()}
    result = ordered(list(calls.values()), default_policy="critical_path")
    assert [names[id(s)] for s in result] == EXPECTED["critical_path"]


def test_policy_order_is_what_the_engine_scheduler_would_batch():
    """One definition for both tiers: the order policy_order gives is the order in which
    the same policy's select fills one big batch from the same queue."""
    requests = [
        EngineRequest(
            q,
            f"n{i}",
            Op.LLM_PREFILL,
            {},
            {},
            depth=d,
            priority=p,
            query_start_s=s,
            arrival_s=float(i),
        )
        for i, (q, d, p, s) in enumerate(
            [("B", 1, 1.0, 1.0), ("B", 3, 3.0, 1.0), ("A", 2, 2.0, 0.0), ("C", 1, 5.0, 0.5)]
        )
    ]
    for name in EXPECTED:
        policy = make_policy(name)
        for request in requests:
            policy.push(request)
        batch = policy.select(BatchBudget(100, 10_000), lambda r: True)
        assert policy_order(name, reversed(requests)) == batch


def two_queries_decoding(mode: str, profile: LatencyProfile) -> tuple[StepScheduler, list]:
    scheduler = StepScheduler(
        num_slots=8,
        max_num_batched_tokens=512,
        kv_capacity=4096,
        cross_query_batching=mode,
        profile=profile,
    )
    old = call("old", start_s=0.0, arrival_s=0.0, depth=1, priority=1.0)
    new = call("new", start_s=1.0, arrival_s=1.0, depth=1, priority=1.0)
    for s in (old, new):
        scheduler.add(s)
    while scheduler.has_work():
        run(scheduler)
    for s in (old, new):
        start_decoding(s)
    return scheduler, [old, new]


def test_cost_rule_batches_decodes_of_two_queries_when_the_fixed_cost_dominates():
    scheduler, (old, new) = two_queries_decoding("cost", FIXED_COST)
    assert [c.seq for c in run(scheduler).chunks] == [old, new]


def test_cost_rule_keeps_one_query_per_step_on_a_compute_bound_profile():
    scheduler, (old, _) = two_queries_decoding("cost", COMPUTE_BOUND)
    assert [c.seq for c in run(scheduler).chunks] == [old]


def test_cross_query_batching_on_and_off_ignore_the_profile():
    scheduler, (old, new) = two_queries_decoding("on", COMPUTE_BOUND)
    assert [c.seq for c in run(scheduler).chunks] == [old, new]
    scheduler, (old, _) = two_queries_decoding("off", FIXED_COST)
    assert [c.seq for c in run(scheduler).chunks] == [old]


def test_the_delay_counts_every_query_already_in_the_step():
    """Base 1 ms, a decode adds 0.6 ms per query in the step: the second query's decode
    joins (0.6 < 1 ms for itself + 1 ms for the third query waiting behind it), the
    third's would delay two queries (1.2 ms) and saves only its own 1 ms: it waits."""
    profile = LatencyProfile(step_base_s=0.001, step_per_seq_s=0.0003, step_per_token_s=0.0003)
    scheduler = StepScheduler(
        num_slots=8,
        max_num_batched_tokens=512,
        kv_capacity=4096,
        cross_query_batching="cost",
        profile=profile,
    )
    calls = [call(q, float(i), float(i), 1, 1.0) for i, q in enumerate("XYZ")]
    for s in calls:
        scheduler.add(s)
    while scheduler.has_work():
        run(scheduler)
    for s in calls:
        start_decoding(s)
    assert [c.seq for c in run(scheduler).chunks] == calls[:2]


def test_a_small_prompt_chunk_joins_another_querys_step_a_large_one_waits():
    for num_tokens, joins in ((40, True), (200, False)):
        scheduler = StepScheduler(
            num_slots=8,
            max_num_batched_tokens=512,
            kv_capacity=4096,
            cross_query_batching="cost",
            profile=FIXED_COST,
        )
        old = call("old", start_s=0.0, arrival_s=0.0, depth=1, priority=1.0)
        scheduler.add(old)
        run(scheduler)
        start_decoding(old)
        new = call("new", start_s=1.0, arrival_s=1.0, depth=1, priority=1.0, num=num_tokens)
        scheduler.add(new)
        chunks = [(c.seq, c.num_tokens) for c in run(scheduler).chunks]
        assert chunks == ([(old, 1), (new, num_tokens)] if joins else [(old, 1)])


def test_queries_waiting_behind_the_step_make_batching_pay():
    """A decode adds 1.5 ms, a step's fixed cost is 1 ms: with two queries the second
    waits (1.5 > 1); with a third queued behind, sharing also spares the third a step's
    fixed cost (1.5 < 2), so the second joins."""
    profile = LatencyProfile(step_base_s=0.001, step_per_seq_s=0.001, step_per_token_s=0.0005)
    for num_queries, num_joined in ((2, 1), (3, 2)):
        scheduler = StepScheduler(
            num_slots=8,
            max_num_batched_tokens=512,
            kv_capacity=4096,
            cross_query_batching="cost",
            profile=profile,
        )
        calls = [call(q, float(i), float(i), 1, 1.0) for i, q in enumerate("XYZ"[:num_queries])]
        for s in calls:
            scheduler.add(s)
        while scheduler.has_work():
            run(scheduler)
        for s in calls:
            start_decoding(s)
        assert [c.seq for c in run(scheduler).chunks] == calls[:num_joined]


def test_a_prompt_joins_when_the_decode_steps_it_then_shares_pay_for_it():
    """A 200-token chunk adds 20.1 ms, more than one step's fixed cost (10 ms): it waits
    while its decode length is unknown. Once it is (32 tokens) and the running query has
    31 decode steps ahead, joining lets it decode in those steps (9.8 ms saved in each)."""
    for max_new_tokens, joins in ((None, False), (32, True)):
        scheduler = StepScheduler(
            num_slots=8,
            max_num_batched_tokens=512,
            kv_capacity=4096,
            cross_query_batching="cost",
            profile=FIXED_COST,
        )
        old = call("old", start_s=0.0, arrival_s=0.0, depth=1, priority=1.0)
        old.max_new_tokens = 32
        scheduler.add(old)
        run(scheduler)
        start_decoding(old)
        new = call("new", start_s=1.0, arrival_s=1.0, depth=1, priority=1.0, num=200)
        new.max_new_tokens = max_new_tokens
        scheduler.add(new)
        chunks = [(c.seq, c.num_tokens) for c in run(scheduler).chunks]
        assert chunks == ([(old, 1), (new, 200)] if joins else [(old, 1)])


def test_joining_pays_weighs_added_time_against_saved_waiting():
    profile = LatencyProfile(step_base_s=0.004, step_per_seq_s=0.002, step_per_token_s=0.002)
    # a decode token adds 4 ms: not for one query in the step (4 < 4 fails), yes with
    # one query waiting behind (4 < 8); two queries in the step would lose 8 ms
    assert not joining_pays(profile, num_in_step=1, num_waiting=0, num_tokens=1)
    assert joining_pays(profile, num_in_step=1, num_waiting=1, num_tokens=1)
    assert not joining_pays(profile, num_in_step=2, num_waiting=1, num_tokens=1)
    # a 30-token prompt adds 62 ms; 20 shared decodes save (8 - 4) ms each = 80 ms + 8
    assert not joining_pays(profile, 1, 1, 30, num_shared_decodes=10)
    assert joining_pays(profile, 1, 1, 30, num_shared_decodes=20)
    # shared decodes that do not pay (a decode token costs more than it saves) add nothing
    assert not joining_pays(profile, 1, 0, 30, num_shared_decodes=1000)


def test_query_unaware_requests_keep_continuous_batching_under_the_cost_rule():
    scheduler, calls = two_queries_decoding("cost", COMPUTE_BOUND)
    for s in calls:
        s.query_start_s = None  # a baseline: no query scheduling, one step group
    assert [c.seq for c in run(scheduler).chunks] == calls


def test_the_engine_core_switches_cross_query_batching_between_steps():
    core = EngineCore("llm", LlamaConfig(), budget=None)
    core.scheduler = StepScheduler(
        num_slots=2, max_num_batched_tokens=64, kv_capacity=256, cross_query_batching="cost"
    )
    for mode in ("off", "on", "cost"):
        core.handle(cmd.SetCrossQueryBatching(mode))
        assert core.scheduler.cross_query_batching == mode
