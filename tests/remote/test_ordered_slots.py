"""OrderedSlots: the HTTP slots of a remote engine go to waiting requests smallest order
key first (the critical path first), first come on ties; a cancelled waiter neither
blocks the queue nor keeps a slot."""

from __future__ import annotations

import asyncio

import pytest

from primflow.engines.remote.http import OrderedSlots

pytestmark = pytest.mark.remote


async def test_a_freed_slot_goes_to_the_smallest_key_then_the_first_come() -> None:
    slots = OrderedSlots(1)
    await slots.acquire(())  # the one slot is taken
    served: list[str] = []

    async def wait(name: str, order: tuple[float, ...]) -> None:
        async with slots.slot(order):
            served.append(name)

    tasks = [
        asyncio.create_task(wait(name, order))
        for name, order in [("late", (2.0, 0.0)), ("critical", (1.0, -5.0)),
                            ("other", (1.0, -1.0)), ("tie", (1.0, -5.0))]
    ]  # fmt: skip
    await asyncio.sleep(0)  # all four are waiting
    slots.release()
    await asyncio.gather(*tasks)
    assert served == ["critical", "tie", "other", "late"]


async def test_a_cancelled_waiter_gives_its_place_and_its_slot_away() -> None:
    slots = OrderedSlots(1)
    await slots.acquire(())
    cancelled = asyncio.create_task(slots.acquire((0.0,)))
    kept = asyncio.create_task(slots.acquire((1.0,)))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    slots.release()
    await asyncio.wait_for(kept, timeout=5)  # the cancelled one did not take the slot
    slots.release()
    await asyncio.wait_for(slots.acquire(()), timeout=5)  # nothing leaked
