"""EngineScheduler and the batching policies, driven directly with time passed in."""

from __future__ import annotations

import pytest

from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.engines.scheduler import Batch, EngineScheduler
from primflow.graph.ir import Op

PROFILE = LatencyProfile(max_batch_size=2, max_batch_tokens=1000)


def req(
    query: str,
    node: str,
    *,
    depth: int = 0,
    priority: float = 0.0,
    start_s: float = 0.0,
    items: int = 1,
    tokens: int = 0,
    call: str | None = None,
) -> EngineRequest:
    return EngineRequest(
        query_id=query,
        node=node,
        op=Op.LLM_PREFILL,
        inputs={},
        params={},
        num_items=items,
        num_tokens=tokens,
        llm_request_id=call,
        depth=depth,
        priority=priority,
        query_start_s=start_s,
    )


def make(policy: str, profile: LatencyProfile = PROFILE, **kwargs: object) -> EngineScheduler:
    kwargs.setdefault("max_wait_ms", 0.0)
    return EngineScheduler("llm", profile, policy=policy, **kwargs)  # type: ignore[arg-type]


def keys(batches: list[Batch]) -> list[list[str]]:
    return [[r.node for r in b.requests] for b in batches]


def drain(scheduler: EngineScheduler, now_s: float = 0.0) -> list[list[str]]:
    """Run batch after batch to completion, as if each finished at once."""
    order: list[list[str]] = []
    while True:
        batches = scheduler.schedule(now_s)
        if not batches:
            return order
        for batch in batches:
            order.append([r.node for r in batch.requests])
            scheduler.update(batch, now_s)


def fig7(scheduler: EngineScheduler) -> None:
    """Fig. 7: Query 1 has A (deep) and B (whose child also waits on D); Query 2 has
    G (deep) and H; all four queued on one LLM in this order."""
    scheduler.add(req("q1", "A", depth=3), 0.0)
    scheduler.add(req("q1", "B", depth=2), 0.0)
    scheduler.add(req("q2", "G", depth=3), 0.0)
    scheduler.add(req("q2", "H", depth=2), 0.0)


def test_fifo_batches_blindly_in_arrival_order() -> None:
    scheduler = make("fifo")
    fig7(scheduler)
    assert drain(scheduler) == [["A", "B"], ["G", "H"]]


def test_topology_fig7_batches_a_with_g_and_advances_both_queries() -> None:
    scheduler = make("topology")
    fig7(scheduler)
    assert drain(scheduler) == [["A", "G"], ["B", "H"]]


def test_topology_takes_highest_depth_first_within_a_bucket() -> None:
    scheduler = make("topology", max_concurrent_batches=1)
    scheduler.add(req("q1", "shallow", depth=1), 0.0)
    scheduler.add(req("q1", "deep", depth=5), 0.1)
    scheduler.add(req("q1", "middle", depth=3), 0.2)
    assert drain(scheduler) == [["deep", "middle"], ["shallow"]]


def test_topology_orders_buckets_by_earliest_queued_arrival() -> None:
    scheduler = make("topology", profile=PROFILE.with_changes(max_batch_size=1))
    scheduler.add(req("q1", "a1"), 0.0)
    scheduler.add(req("q2", "b1"), 1.0)
    scheduler.add(req("q1", "a2"), 2.0)
    # a1 goes first; then q1's earliest queued is a2 (t=2), later than q2's b1 (t=1).
    assert drain(scheduler) == [["a1"], ["b1"], ["a2"]]


def test_topology_round_robin_fills_from_later_rounds() -> None:
    scheduler = make("topology", profile=PROFILE.with_changes(max_batch_size=5))
    for node, depth in [("a", 3), ("b", 2), ("c", 1)]:
        scheduler.add(req("q1", node, depth=depth), 0.0)
    scheduler.add(req("q2", "x", depth=1), 0.0)
    assert drain(scheduler) == [["a", "x", "b", "c"]]


def test_critical_path_orders_by_remaining_path_then_query_then_arrival() -> None:
    # Queries submitted at the same instant: the longest remaining path goes first.
    scheduler = make("critical_path", profile=PROFILE.with_changes(max_batch_size=1))
    scheduler.add(req("q1", "short", priority=0.5), 0.0)
    scheduler.add(req("q2", "tie_late_query", priority=2.0), 0.0)
    scheduler.add(req("q1", "long", priority=3.0), 0.0)
    scheduler.add(req("q1", "tie_early_query", priority=2.0), 0.1)
    assert drain(scheduler) == [["long"], ["tie_early_query"], ["tie_late_query"], ["short"]]


def test_critical_path_serves_earlier_queries_first_then_their_longest_path() -> None:
    # A new query's first step has the largest remaining path of all, yet it must not
    # overtake what older queries still have to do (that was longest-remaining-first).
    scheduler = make("critical_path", profile=PROFILE.with_changes(max_batch_size=1))
    scheduler.add(req("old", "old_tail", priority=0.5, start_s=0.0), 5.0)
    scheduler.add(req("new", "new_head", priority=9.0, start_s=4.0), 4.0)
    scheduler.add(req("mid", "mid_side", priority=1.0, start_s=2.0), 3.0)
    scheduler.add(req("mid", "mid_path", priority=4.0, start_s=2.0), 3.5)
    assert drain(scheduler, 5.0) == [["old_tail"], ["mid_path"], ["mid_side"], ["new_head"]]


def test_critical_path_never_lets_later_queries_overtake_forever() -> None:
    # Keys are fixed when queued and later queries get larger ones: the old request
    # goes out as soon as it is the smallest, however many new queries keep arriving.
    scheduler = make("critical_path", profile=PROFILE.with_changes(max_batch_size=1))
    scheduler.add(req("old", "old_tail", priority=0.1, start_s=0.0), 0.0)
    served: list[str] = []
    for i in range(1, 4):
        scheduler.add(req(f"q{i}", f"head{i}", priority=100.0, start_s=float(i)), float(i))
        [batch] = scheduler.schedule(float(i))
        served.append(batch.requests[0].node)
        scheduler.update(batch, float(i))
    assert served == ["old_tail", "head1", "head2"]


@pytest.mark.parametrize("policy", ["fifo", "topology", "critical_path"])
def test_budget_limits_items_and_tokens_but_admits_one_oversized_request(policy: str) -> None:
    profile = LatencyProfile(max_batch_size=4, max_batch_tokens=100)
    scheduler = make(policy, profile=profile, max_concurrent_batches=1)
    scheduler.add(req("q1", "big", items=9), 0.0)
    scheduler.add(req("q2", "two", items=2, tokens=60), 0.0)
    scheduler.add(req("q3", "two_more", items=2, tokens=60), 0.0)
    scheduler.add(req("q4", "one", items=1), 0.0)
    order = drain(scheduler)
    assert order[0] == ["big"]
    assert sorted(n for batch in order for n in batch) == ["big", "one", "two", "two_more"]
    assert ["two", "two_more"] not in order  # 120 tokens > 100


def test_max_wait_holds_a_partial_batch_until_the_oldest_waited() -> None:
    scheduler = make("fifo", max_wait_ms=2.0)
    scheduler.add(req("q1", "a"), 10.0)
    assert scheduler.schedule(10.0) == []
    assert scheduler.next_wakeup_s() == pytest.approx(10.002)
    scheduler.add(req("q2", "b"), 10.001)  # fills the batch: formed at once
    assert keys(scheduler.schedule(10.001)) == [["a", "b"]]
    assert scheduler.next_wakeup_s() is None


def test_max_wait_forms_the_partial_batch_when_due() -> None:
    scheduler = make("fifo", max_wait_ms=2.0)
    scheduler.add(req("q1", "a"), 10.0)
    assert scheduler.schedule(10.0019) == []
    assert keys(scheduler.schedule(scheduler.next_wakeup_s() or 0.0)) == [["a"]]


def test_max_wait_is_skipped_when_nothing_else_can_arrive() -> None:
    scheduler = make("fifo", max_wait_ms=2.0)
    scheduler.add(req("q1", "a"), 10.0)
    assert keys(scheduler.schedule(10.0, is_more_expected=False)) == [["a"]]


def test_no_batch_without_a_free_slot_and_update_frees_it() -> None:
    scheduler = make("fifo", profile=PROFILE.with_changes(max_batch_size=1))
    scheduler.add(req("q1", "a"), 0.0)
    scheduler.add(req("q1", "b"), 0.0)
    [first] = scheduler.schedule(0.0)
    assert scheduler.schedule(0.0) == []
    assert scheduler.next_wakeup_s() is None  # nothing to wait for but the running batch
    scheduler.update(first, 1.0)
    assert keys(scheduler.schedule(1.0)) == [["b"]]


def test_instances_balanced_by_requests_in_flight() -> None:
    scheduler = make("fifo", profile=PROFILE.with_changes(max_batch_size=1), num_instances=2)
    for node in "abc":
        scheduler.add(req("q1", node), 0.0)
    batches = scheduler.schedule(0.0)
    assert [(b.instance, b.requests[0].node) for b in batches] == [(0, "a"), (1, "b")]
    scheduler.update(batches[1], 0.0)
    assert [(b.instance, b.requests[0].node) for b in scheduler.schedule(0.0)] == [(1, "c")]


def test_llm_instances_balanced_by_reported_load() -> None:
    scheduler = make("fifo", num_instances=2, max_concurrent_batches=4)
    scheduler.add(req("q1", "a", call="q1/x"), 0.0)
    [batch] = scheduler.schedule(0.0, loads=[0.9, 0.1])
    assert batch.instance == 1


def test_phases_of_one_llm_call_stay_on_its_instance() -> None:
    scheduler = make("fifo", num_instances=2, max_concurrent_batches=4)
    scheduler.add(req("q1", "prefill", call="q1/answer"), 0.0)
    [first] = scheduler.schedule(0.0, loads=[0.0, 0.5])
    assert first.instance == 0
    scheduler.add(req("q1", "decode", call="q1/answer"), 0.0)
    scheduler.add(req("q2", "other", call="q2/answer"), 0.0)
    batches = scheduler.schedule(0.0, loads=[0.9, 0.1])  # instance 1 is preferred now
    placed = {r.node: b.instance for b in batches for r in b.requests}
    assert placed == {"other": 1, "decode": 0}


def test_a_phase_pinned_to_a_busy_instance_waits_without_a_timer() -> None:
    scheduler = make("fifo", num_instances=2, max_wait_ms=2.0)
    scheduler.add(req("q1", "prefill", call="q1/answer"), 0.0)
    [first] = scheduler.schedule(0.0, is_more_expected=False)
    scheduler.add(req("q1", "decode", call="q1/answer"), 0.0)
    assert scheduler.schedule(0.01) == []  # instance 1 is free but holds no KV for it
    assert scheduler.next_wakeup_s() is None
    scheduler.update(first, 0.02)
    assert [(b.instance, b.requests[0].node) for b in scheduler.schedule(0.02)] == [
        (first.instance, "decode")
    ]


def test_remove_query_drops_its_queued_requests_and_pins() -> None:
    for policy in ("fifo", "topology", "critical_path"):
        scheduler = make(policy, profile=PROFILE.with_changes(max_batch_size=8), num_instances=2)
        scheduler.add(req("q1", "a", call="q1/c"), 0.0)
        scheduler.add(req("q2", "b"), 0.0)
        scheduler.add(req("q1", "c"), 0.0)
        dropped = scheduler.remove_query("q1")
        assert sorted(r.node for r in dropped) == ["a", "c"]
        assert scheduler.num_queued == 1
        assert drain(scheduler) == [["b"]], policy
        assert scheduler.remove_query("q1") == []


def test_unknown_policy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown batching policy 'lifo'"):
        make("lifo")


@pytest.mark.parametrize("policy", ["fifo", "topology", "critical_path"])
def test_a_queued_request_names_the_policy_for_the_engines_own_steps(policy: str) -> None:
    """An LLM engine orders its steps itself; the request tells it this scheduler's
    policy (engines/llm/step_order.py), so both tiers apply the same one."""
    scheduler = EngineScheduler("llm", PROFILE, policy=policy, max_concurrent_batches=1024)
    request = req("q1", "prefill")
    scheduler.add(request, now_s=0.0)
    [batch] = scheduler.schedule(0.0)
    assert batch.requests == [request] and request.policy == policy
