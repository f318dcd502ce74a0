"""A virtual-time asyncio event loop: the same async code runs as a simulation.

This module owns :class:`VirtualEventLoop` and :func:`run_virtual`. The loop's
``time()`` is virtual (seconds from ``start_s``). When no callback is ready, the loop
jumps virtual time to the earliest scheduled timer instead of sleeping, like trio's
``MockClock`` with ``autojump_threshold=0``. ``asyncio.sleep``, ``call_later``,
``call_at``, futures, ``asyncio.timeout``, ``wait_for`` and ``TaskGroup`` all work
unchanged because they read the loop's clock. Invariants:

- Virtual time never moves while a callback runs; it only jumps when the loop is idle,
  and it never goes backwards. A timer fires at exactly its ``when`` (a timer due
  within 1 ns of the current time fires at the current time, as in asyncio).
- Timers due at the same virtual instant fire in the order they were scheduled
  (plain asyncio leaves that order to the heap), so a run is a pure function of the
  program: the same program gives the same event order and the same times.
- No threads: ``run_in_executor`` (and so ``asyncio.to_thread``) is refused, because
  a thread's work takes real time the virtual clock cannot see.
- A program that waits with nothing ready and no timer scheduled can never wake up;
  the loop raises :class:`VirtualDeadlockError` instead of hanging.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from contextvars import Context
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# Timers closer than this to the current time fire now (asyncio uses the OS clock's).
_RESOLUTION_S = 1e-9


class VirtualDeadlockError(RuntimeError):
    """Every task waits, no timer is scheduled and no I/O is pending: nothing can wake."""


class _OrderedTimer(asyncio.TimerHandle):
    """A timer that breaks ties in ``when`` by scheduling order (FIFO)."""

    __slots__ = ("_seq",)

    def __init__(
        self,
        when: float,
        seq: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        context: Context | None,
    ) -> None:
        super().__init__(when, callback, args, loop, context)
        self._seq = seq

    def _key(self) -> tuple[float, int]:
        return (self._when, self._seq)  # type: ignore[attr-defined]

    def __lt__(self, other: object) -> bool:
        if isinstance(other, _OrderedTimer):
            return self._key() < other._key()
        return super().__lt__(other)  # type: ignore[operator]

    def __le__(self, other: object) -> bool:
        if isinstance(other, _OrderedTimer):
            return self._key() <= other._key()
        return super().__le__(other)  # type: ignore[operator]


class _JumpSelector(selectors.DefaultSelector):
    """Polls real I/O without blocking; where the loop would block, jumps the clock."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualEventLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        assert self.loop is not None
        self.loop._jump_to_next_timer()
        return []


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is virtual and jumps over idle time.

    ``rng`` is a seeded numpy Generator for simulation code that wants the loop's seed.
    """

    def __init__(self, *, start_s: float = 0.0, seed: int | None = None) -> None:
        selector = _JumpSelector()
        super().__init__(selector)
        selector.loop = self
        self._now_s = float(start_s)
        self._clock_resolution = max(_RESOLUTION_S, 4 * math.ulp(self._now_s))
        self._num_timers_made = 0
        self._num_jumps = 0
        self.rng = np.random.default_rng(seed)

    def time(self) -> float:
        return self._now_s

    @property
    def num_jumps(self) -> int:
        """How many times the clock jumped forward over idle time."""
        return self._num_jumps

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        if self.get_debug():
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        self._num_timers_made += 1
        timer = _OrderedTimer(when, self._num_timers_made, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        raise RuntimeError(
            f"the virtual-time event loop cannot run {func!r} in a thread: real work takes "
            "real time the virtual clock cannot see; use fake engines that sleep instead"
        )

    def _jump_to_next_timer(self) -> None:
        # _run_once has already dropped cancelled timers from the head of the heap.
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        if not scheduled:
            raise VirtualDeadlockError(
                f"virtual clock at t={self._now_s:.6f}s: every task is waiting, no timer is "
                "scheduled and no I/O is pending, so nothing can ever wake them"
            )
        when = scheduled[0].when()
        if when > self._now_s:
            self._now_s = when
            self._num_jumps += 1
            # asyncio fires timers with when < time() + resolution; far from zero a 1 ns
            # resolution rounds away and a timer due now would never fire.
            self._clock_resolution = max(_RESOLUTION_S, 4 * math.ulp(when))


def new_virtual_loop(*, start_s: float = 0.0, seed: int | None = None) -> VirtualEventLoop:
    return VirtualEventLoop(start_s=start_s, seed=seed)


def run_virtual(
    coro: Coroutine[Any, Any, T], *, seed: int | None = None, start_s: float = 0.0
) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop and return its result.

    Like ``asyncio.run``: leftover tasks are cancelled and the loop is closed after.
    ``seed`` seeds the loop's ``rng`` (``asyncio.get_running_loop().rng``).
    """
    with asyncio.Runner(loop_factory=lambda: VirtualEventLoop(start_s=start_s, seed=seed)) as r:
        return r.run(coro)


def virtual_rng() -> np.random.Generator:
    """The running virtual loop's seeded Generator (raises outside a virtual loop)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualEventLoop):
        raise RuntimeError("virtual_rng() needs a running VirtualEventLoop (use run_virtual)")
    return loop.rng
