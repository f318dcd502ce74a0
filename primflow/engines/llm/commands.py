"""Messages from the event loop to the LLM engine thread, and the way results go back.

Invariants: the event loop never touches engine-thread state; it only posts commands
to the llama thread (thread.py), which handles each engine's commands in order. The
engine thread never touches an asyncio future directly; it schedules ``settle`` on
the future's own loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from primflow.engines.base import EngineRequest, Outputs


@dataclass(frozen=True, slots=True)
class AddPhase:
    """One LLM primitive of one query (a prefill, decode or partial decode phase)."""

    request: EngineRequest
    request_id: str
    content: str  # rendered user content for prefill phases, "" otherwise
    future: asyncio.Future[Outputs]
    # The same phase with every placeholder content-free, when its params ask for it
    # (a calibrated judge's prefill: calibration.py).
    content_free: str | None = None


@dataclass(frozen=True, slots=True)
class Abort:
    query_id: str


@dataclass(frozen=True, slots=True)
class Release:
    query_id: str


@dataclass(frozen=True, slots=True)
class SetThreads:
    num_threads: int


@dataclass(frozen=True, slots=True)
class SetCrossQueryBatching:
    mode: str  # step_groups.CROSS_QUERY_BATCHING


@dataclass(frozen=True, slots=True)
class Probe:
    """Read engine-thread state on the engine thread (diagnostics, tests)."""

    read: Callable[[Any], Any]
    future: concurrent.futures.Future[Any]


@dataclass(frozen=True, slots=True)
class Start:
    """Load the model and join the llama thread's turns."""


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Command = AddPhase | Abort | Release | SetThreads | SetCrossQueryBatching | Probe | Start | Stop


def _settle(future: asyncio.Future[Outputs], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled by abort meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def resolve(future: asyncio.Future[Outputs], result: Outputs) -> None:
    """Set ``future``'s result from any thread."""
    call_on_loop(future.get_loop(), _settle, future, result, None)


def fail(future: asyncio.Future[Outputs], error: BaseException) -> None:
    """Fail ``future`` from any thread."""
    call_on_loop(future.get_loop(), _settle, future, None, error)


def call_on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    """Run ``callback`` on ``loop``'s thread soon (from any thread)."""
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(callback, *args)
