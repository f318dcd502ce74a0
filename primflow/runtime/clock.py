"""Time for the runtime: one ``Clock`` interface for reading time and arming timers.

The real clock is the running event loop's own time, so a virtual-time loop
(``primflow.testing.clock``) drives the same code unchanged: batching waits and
deadlines then fire in virtual time. ``ManualClock`` serves synchronous tests that
step time by hand. Nothing in ``runtime/`` or the engine workers reads ``time.*``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_s(self) -> float: ...

    def call_at(self, when_s: float, callback: Callable[[], object]) -> Timer: ...

    def call_soon(self, callback: Callable[[], object]) -> Timer: ...


class LoopClock:
    """The event loop's clock (monotonic seconds); bind it inside a running loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()

    def now_s(self) -> float:
        return self.loop.time()

    def call_at(self, when_s: float, callback: Callable[[], object]) -> Timer:
        return self.loop.call_at(when_s, callback)

    def call_soon(self, callback: Callable[[], object]) -> Timer:
        return self.loop.call_soon(callback)


class _ManualTimer:
    __slots__ = ("callback", "is_cancelled", "when_s")

    def __init__(self, when_s: float, callback: Callable[[], object]) -> None:
        self.when_s = when_s
        self.callback = callback
        self.is_cancelled = False

    def cancel(self) -> None:
        self.is_cancelled = True


class ManualClock:
    """A clock that moves only when told to; ``advance`` runs the timers that fell due."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def now_s(self) -> float:
        return self._now_s

    def call_at(self, when_s: float, callback: Callable[[], object]) -> Timer:
        timer = _ManualTimer(when_s, callback)
        heapq.heappush(self._timers, (when_s, next(self._seq), timer))
        return timer

    def call_soon(self, callback: Callable[[], object]) -> Timer:
        return self.call_at(self._now_s, callback)

    def advance(self, delta_s: float = 0.0) -> None:
        """Move time forward by ``delta_s``, running due timers in time order."""
        target_s = self._now_s + delta_s
        while self._timers and self._timers[0][0] <= target_s:
            when_s, _, timer = heapq.heappop(self._timers)
            self._now_s = max(self._now_s, when_s)
            if not timer.is_cancelled:
                timer.callback()
        self._now_s = target_s

    @property
    def num_pending_timers(self) -> int:
        return sum(1 for _, _, t in self._timers if not t.is_cancelled)
