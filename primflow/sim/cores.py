"""Engines that share a host's cores: processor sharing in virtual time.

On one machine the embedded engines share the cores (``shared`` placement): when two
compute-bound engines run at once, each gets half the cores and takes about twice as
long. ``SharedCores.spend(work_s)`` is a sleep that models it: every job in progress
advances at ``min(1, num_cores / (num_jobs * cores_per_job))`` seconds of work per
second, recomputed whenever a job starts or ends (egalitarian processor sharing).

Invariants: a job alone takes exactly ``work_s``; the total work done per second never
exceeds ``num_cores / cores_per_job`` jobs' worth; a cancelled job leaves at once and the
others speed up. Only loop timers are used, so it runs on the virtual loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

_EPSILON_S = 1e-12


@dataclass(eq=False, slots=True)
class _Job:
    remaining_s: float
    done: asyncio.Future[None] = field(repr=False)


class SharedCores:
    """Processor sharing of ``num_cores`` among jobs that each could use ``cores_per_job``."""

    def __init__(self, num_cores: float, cores_per_job: float | None = None) -> None:
        if num_cores <= 0:
            raise ValueError(f"shared cores must be > 0, got {num_cores}")
        self.num_cores = num_cores
        self.cores_per_job = num_cores if cores_per_job is None else cores_per_job
        if self.cores_per_job <= 0:
            raise ValueError(f"cores per job must be > 0, got {self.cores_per_job}")
        self._jobs: list[_Job] = []
        self._updated_s = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def num_jobs(self) -> int:
        return len(self._jobs)

    def rate(self, num_jobs: int) -> float:
        """Seconds of work per second each of ``num_jobs`` jobs gets."""
        if num_jobs == 0:
            return 1.0
        return min(1.0, self.num_cores / (num_jobs * self.cores_per_job))

    async def spend(self, work_s: float) -> None:
        """Wait until ``work_s`` seconds of work are done, sharing the cores."""
        if work_s <= 0:
            return
        loop = asyncio.get_running_loop()
        self._advance(loop.time())
        job = _Job(work_s, loop.create_future())
        self._jobs.append(job)
        self._reschedule(loop)
        try:
            await job.done
        finally:
            if job in self._jobs:  # cancelled: the others speed up
                self._advance(loop.time())
                self._jobs.remove(job)
                self._reschedule(loop)

    def _advance(self, now_s: float) -> None:
        elapsed_s = now_s - self._updated_s
        self._updated_s = now_s
        if elapsed_s <= 0 or not self._jobs:
            return
        progress_s = elapsed_s * self.rate(len(self._jobs))
        for job in self._jobs:
            job.remaining_s -= progress_s

    def _reschedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._jobs:
            return
        first_s = min(job.remaining_s for job in self._jobs)
        delay_s = max(0.0, first_s) / self.rate(len(self._jobs))
        self._timer = loop.call_at(loop.time() + delay_s, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._advance(loop.time())
        finished = [job for job in self._jobs if job.remaining_s <= _EPSILON_S]
        if not finished:  # float rounding: the closest job is a hair short; finish it
            finished = [min(self._jobs, key=lambda job: job.remaining_s)]
        for job in finished:
            self._jobs.remove(job)
            if not job.done.done():
                job.done.set_result(None)
        self._reschedule(loop)
