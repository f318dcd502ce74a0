"""``EngineHost`` hands calls to its engine in the driver's order, whatever order they
arrive in (Ray does not keep the order of an async actor's calls), including the very
first calls of an incarnation. The host is driven directly here, without a cluster:
ordering is its own logic."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ray")

from primflow.engines.base import Engine, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.ray_actors import EngineHost
from primflow.engines.ray_actors import host as host_module
from primflow.graph.ir import Op
from primflow.testing.fakes import FakeEmbedder


def _build(budget: CoreBudget) -> Engine:
    return FakeEmbedder("embedder", latency_scale=0.0)


def _request(seq: int) -> EngineRequest:
    return EngineRequest(f"q{seq}", f"embed{seq}", Op.EMBED, {"items": [f"text {seq}"]}, {})


async def _run(host: EngineHost, seq: int, floor: int) -> None:
    async for _event in host.run_batch(seq, floor, [_request(seq)], [False]):
        pass


def _order(host: EngineHost) -> list[str]:
    return [batch[0].node for batch in host.engine_attribute("batches")]


async def test_calls_arriving_out_of_order_reach_the_engine_in_order() -> None:
    host = EngineHost(_build, 1)
    await _run(host, 0, 0)
    late = [asyncio.ensure_future(_run(host, seq, 1)) for seq in (3, 2, 4)]
    await asyncio.sleep(0.01)
    assert _order(host) == ["embed0"]  # 2, 3, 4 wait for 1
    await _run(host, 1, 1)
    await asyncio.gather(*late)
    assert _order(host) == ["embed0", "embed1", "embed2", "embed3", "embed4"]


async def test_the_first_call_to_arrive_waits_for_an_earlier_one_still_on_its_way() -> None:
    host = EngineHost(_build, 1)
    second = asyncio.ensure_future(_run(host, 1, 0))  # sent after 0, arrives first
    await asyncio.sleep(0.01)
    assert _order(host) == []
    await _run(host, 0, 0)
    await second
    assert _order(host) == ["embed0", "embed1"]


async def test_a_call_below_the_floor_is_never_waited_for() -> None:
    host = EngineHost(_build, 1)
    await _run(host, 5, 5)
    # 6 was lost with a crashed incarnation (or a restarted one starts here); the
    # driver saw 6 fail, so 7's floor is 7 and 7 runs without waiting.
    await asyncio.wait_for(_run(host, 7, 7), timeout=host_module.MAX_ORDER_WAIT_S / 2)
    assert _order(host) == ["embed5", "embed7"]


async def test_a_lost_call_holds_the_next_one_only_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(host_module, "MAX_ORDER_WAIT_S", 0.05)
    host = EngineHost(_build, 1)
    await _run(host, 5, 5)
    await _run(host, 7, 6)  # 6 never comes, and the driver has not yet seen it fail
    assert _order(host) == ["embed5", "embed7"]
