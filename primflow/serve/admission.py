"""Admission: at most ``max_queued_queries`` queries queued or running in the server.

A query is admitted or refused at once (never queued here: the runtime and engine
schedulers are the queues), so a refusal cannot disturb an admitted query.
Invariants: ``num_active`` counts admitted queries whose work has not ended; each
admission is released exactly once (``Ticket.release`` is idempotent); while draining
nothing is admitted and ``wait_idle`` returns once the last query ends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


class Refused(Exception):
    """The query was not admitted; ``reason`` is ``full`` or ``draining``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Ticket:
    admission: Admission
    query_id: str
    is_released: bool = field(default=False)

    def release(self) -> None:
        if not self.is_released:
            self.is_released = True
            self.admission._release(self)


class Admission:
    def __init__(self, max_queued_queries: int) -> None:
        self.max_queued_queries = max_queued_queries
        self.is_draining = False
        self.active: dict[str, Ticket] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def num_active(self) -> int:
        return len(self.active)

    def admit(self, query_id: str) -> Ticket:
        if self.is_draining:
            raise Refused("draining", "the server is shutting down; no new queries")
        if len(self.active) >= self.max_queued_queries:
            raise Refused(
                "full",
                f"the server has {len(self.active)} queries queued or running "
                f"(max {self.max_queued_queries}); retry later",
            )
        ticket = Ticket(self, query_id)
        self.active[query_id] = ticket
        self._idle.clear()
        return ticket

    def _release(self, ticket: Ticket) -> None:
        self.active.pop(ticket.query_id, None)
        if not self.active:
            self._idle.set()

    def start_draining(self) -> None:
        self.is_draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """True if every admitted query ended within ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
