"""The virtual-time event loop: ordering, jumps, timeouts, cancellation, deadlock."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from primflow.testing.clock import (
    _RESOLUTION_S,
    VirtualDeadlockError,
    VirtualEventLoop,
    run_virtual,
    virtual_rng,
)


def _loop() -> VirtualEventLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualEventLoop)
    return loop


def test_sleep_jumps_virtual_time_exactly() -> None:
    async def main() -> list[float]:
        loop = _loop()
        seen = [loop.time()]
        await asyncio.sleep(3600.0)
        seen.append(loop.time())
        await asyncio.sleep(0.25)
        seen.append(loop.time())
        return seen

    assert run_virtual(main()) == [0.0, 3600.0, 3600.25]


def test_start_time_and_time_frozen_while_a_callback_runs() -> None:
    async def main() -> tuple[float, float]:
        loop = _loop()
        before = loop.time()
        sum(range(200_000))  # real work: virtual time must not move
        return before, loop.time()

    assert run_virtual(main(), start_s=100.0) == (100.0, 100.0)


def test_timers_fire_in_time_order_and_ties_in_scheduling_order() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = _loop()
        fired: list[tuple[str, float]] = []
        done: asyncio.Future[None] = loop.create_future()

        def record(name: str) -> None:
            fired.append((name, loop.time()))

        for i in range(50):  # equal deadlines: must fire 0..49 in order
            loop.call_later(2.0, record, f"tie{i}")
        loop.call_at(1.0, record, "at1")
        loop.call_later(0.5, record, "half")
        loop.call_later(3.0, done.set_result, None)
        await done
        return fired

    fired = run_virtual(main())
    assert fired[:2] == [("half", 0.5), ("at1", 1.0)]
    assert fired[2:] == [(f"tie{i}", 2.0) for i in range(50)]


def test_clock_jumps_once_per_distinct_idle_deadline() -> None:
    async def main() -> tuple[int, float]:
        loop = _loop()
        await asyncio.gather(*(asyncio.sleep(d) for d in (1.0, 1.0, 2.0, 5.0)))
        return loop.num_jumps, loop.time()

    assert run_virtual(main()) == (3, 5.0)


def test_future_resolved_by_a_timer_wakes_its_waiter_at_that_time() -> None:
    async def main() -> tuple[str, float]:
        loop = _loop()
        fut: asyncio.Future[str] = loop.create_future()
        loop.call_later(7.5, fut.set_result, "ready")
        value = await fut
        return value, loop.time()

    assert run_virtual(main()) == ("ready", 7.5)


def test_asyncio_timeout_fires_at_its_deadline() -> None:
    async def main() -> float:
        loop = _loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.sleep(60.0)
        return loop.time()

    assert run_virtual(main()) == 2.0


def test_wait_for_that_finishes_early_leaves_no_jump_to_its_deadline() -> None:
    async def main() -> tuple[str, float, int]:
        loop = _loop()
        value = await asyncio.wait_for(_after(1.0, "fast"), timeout=1000.0)
        return value, loop.time(), loop.num_jumps

    # The cancelled 1000 s timeout timer must not pull the clock forward.
    assert run_virtual(main()) == ("fast", 1.0, 1)


def test_wait_for_times_out_and_cancels_the_inner_task() -> None:
    async def main() -> tuple[float, bool]:
        loop = _loop()
        inner_cancelled = False

        async def slow() -> None:
            nonlocal inner_cancelled
            try:
                await asyncio.sleep(50.0)
            except asyncio.CancelledError:
                inner_cancelled = True
                raise

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow(), timeout=4.0)
        return loop.time(), inner_cancelled

    assert run_virtual(main()) == (4.0, True)


def test_cancelling_a_sleeping_task_delivers_cancel_at_the_current_time() -> None:
    async def main() -> tuple[float, float]:
        loop = _loop()
        cancelled_at: list[float] = []

        async def sleeper() -> None:
            try:
                await asyncio.sleep(100.0)
            except asyncio.CancelledError:
                cancelled_at.append(loop.time())
                raise

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(2.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(1.0)
        return cancelled_at[0], loop.time()

    assert run_virtual(main()) == (2.0, 3.0)


def test_many_cancelled_timers_keep_order_of_the_rest() -> None:
    # Past 100 timers with most cancelled, asyncio rebuilds the heap; ties must stay FIFO.
    async def main() -> list[int]:
        loop = _loop()
        fired: list[int] = []
        handles = [loop.call_later(1.0 + (i % 3), fired.append, i) for i in range(300)]
        for i, handle in enumerate(handles):
            if i % 5 != 0:
                handle.cancel()
        await asyncio.sleep(10.0)
        return fired

    kept = [i for i in range(300) if i % 5 == 0]
    expected = sorted(kept, key=lambda i: (1.0 + (i % 3), i))
    assert run_virtual(main()) == expected


def test_task_group_failure_cancels_siblings_at_the_failure_time() -> None:
    async def main() -> tuple[float, list[str]]:
        loop = _loop()
        events: list[str] = []

        async def fail_at(delay: float) -> None:
            await asyncio.sleep(delay)
            raise ValueError("boom")

        async def long_sibling() -> None:
            try:
                await asyncio.sleep(100.0)
            except asyncio.CancelledError:
                events.append(f"sibling cancelled at {loop.time()}")
                raise

        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(fail_at(3.0))
                tg.create_task(long_sibling())
        assert info.group_contains(ValueError)
        return loop.time(), events

    assert run_virtual(main()) == (3.0, ["sibling cancelled at 3.0"])


@pytest.mark.parametrize(("start_s", "first_sleep_s"), [(1e10, 0.0), (0.0, 1e10)])
def test_timers_due_now_still_fire_far_from_time_zero(start_s: float, first_sleep_s: float) -> None:
    # At t = 1e10 s a float cannot represent t + 1 ns; a timer due "now" must still fire.
    async def main() -> float:
        loop = _loop()
        await asyncio.sleep(first_sleep_s)
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_later(0.0, fut.set_result, None)
        await fut
        await asyncio.sleep(0.5)
        return loop.time()

    assert run_virtual(main(), start_s=start_s) == 1e10 + 0.5


def test_waiting_forever_raises_deadlock_instead_of_hanging() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(VirtualDeadlockError, match="nothing can ever wake"):
        run_virtual(main())


def test_threads_are_refused() -> None:
    async def main() -> None:
        await asyncio.to_thread(sum, [1, 2])

    with pytest.raises(RuntimeError, match=r"cannot run .* in a thread"):
        run_virtual(main())


def test_seeded_rng_makes_a_random_program_reproducible() -> None:
    async def main() -> list[tuple[int, float]]:
        rng = virtual_rng()
        loop = _loop()
        trace: list[tuple[int, float]] = []

        async def worker(i: int) -> None:
            for _ in range(5):
                await asyncio.sleep(float(rng.exponential(1.0)))
                trace.append((i, loop.time()))

        async with asyncio.TaskGroup() as tg:
            for i in range(8):
                tg.create_task(worker(i))
        return trace

    first = run_virtual(main(), seed=7)
    assert first == run_virtual(main(), seed=7)
    assert first != run_virtual(main(), seed=8)
    assert [t for _, t in first] == sorted(t for _, t in first)


def test_virtual_rng_outside_a_virtual_loop_is_an_error() -> None:
    async def main() -> None:
        virtual_rng()

    with pytest.raises(RuntimeError, match="needs a running VirtualEventLoop"):
        asyncio.run(main())


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e9, allow_nan=False)),
        max_size=40,
    )
)
@example(delays=[1.0000000000000002e-06, 1e-06])
def test_sleepers_wake_in_stable_delay_order_at_their_exact_delays(delays: list[float]) -> None:
    async def main() -> list[tuple[int, float]]:
        loop = _loop()
        woke: list[tuple[int, float]] = []

        async def sleeper(i: int, delay: float) -> None:
            await asyncio.sleep(delay)
            woke.append((i, loop.time()))

        async with asyncio.TaskGroup() as tg:
            for i, delay in enumerate(delays):
                tg.create_task(sleeper(i, delay))
        return woke

    woke = run_virtual(main())
    expected_order = sorted(range(len(delays)), key=lambda i: (delays[i], i))
    # sleep(0) yields without a timer, so zero delays wake first, in start order.
    assert [i for i, _ in woke] == expected_order
    # Like asyncio's own loop, timers due within the clock resolution of "now" fire
    # together, so a wake time is exact up to that resolution (hypothesis found
    # delays 1e-06 and 1.0000000000000002e-06).
    assert all(abs(t - delays[i]) <= max(_RESOLUTION_S, 4 * math.ulp(t)) for i, t in woke)


async def _after(delay: float, value: str) -> str:
    await asyncio.sleep(delay)
    return value
