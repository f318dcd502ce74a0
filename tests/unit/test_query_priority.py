"""A query's client priority orders every batching policy before anything else, and
reaches the engine requests from ``Runtime.run`` / ``Session.ask``."""

from __future__ import annotations

import asyncio

import pytest

from primflow.engines.base import EngineRequest
from primflow.engines.policies import POLICIES, policy_order
from primflow.graph.ir import Op
from primflow.session import EngineStack, Session, fake_factory


def req(
    query: str, node: str, *, query_priority: int, start_s: float, arrival_s: float
) -> EngineRequest:
    return EngineRequest(
        query,
        node,
        Op.EMBED,
        {},
        {},
        depth=1,
        priority=1.0,
        query_start_s=start_s,
        query_priority=query_priority,
        arrival_s=arrival_s,
    )


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_a_higher_query_priority_goes_first_under_every_policy(policy: str) -> None:
    requests = [
        req("old", "a", query_priority=0, start_s=0.0, arrival_s=0.0),
        req("low", "a", query_priority=-1, start_s=0.5, arrival_s=0.5),
        req("mid", "a", query_priority=0, start_s=1.0, arrival_s=1.0),
        req("urgent", "a", query_priority=5, start_s=2.0, arrival_s=2.0),
        req("urgent", "b", query_priority=5, start_s=2.0, arrival_s=2.1),
    ]
    order = [r.query_id for r in policy_order(policy, requests)]
    assert order == ["urgent", "urgent", "old", "mid", "low"]


def test_equal_priorities_keep_each_policy_s_own_order() -> None:
    requests = [
        req("first", "a", query_priority=3, start_s=0.0, arrival_s=0.0),
        req("second", "a", query_priority=3, start_s=1.0, arrival_s=1.0),
    ]
    for policy in POLICIES:
        assert [r.query_id for r in policy_order(policy, requests)] == ["first", "second"]


def test_session_priority_reaches_every_engine_request() -> None:
    async def main() -> list[EngineRequest]:
        stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        async with stack, Session(stack) as session:
            await session.ask("naive_rag", "How much leave?", ["25 days."], priority=7)
            with pytest.raises(ValueError, match="takes no priority"):
                await session.ask("naive_rag", "q", ["d"], scheme="sequential", priority=1)
            return [r for e in stack.engines.values() for b in _batches(e) for r in b]

    requests = asyncio.run(main())
    assert requests and all(r.query_priority == 7 for r in requests)


def _batches(engine: object) -> list[list[EngineRequest]]:
    while not hasattr(engine, "batches") and hasattr(engine, "inner"):
        engine = engine.inner
    batches: list[list[EngineRequest]] = getattr(engine, "batches", [])
    return batches
