"""Server-Sent Events: one query's stream, and the wire format.

A query's events go through an ``asyncio.Queue`` fed by its callbacks (answer text,
node_done) and closed by its task's end; the response body drains it. Invariant: when
the body stops early (the client went away, so Starlette cancels it), the query's task
is cancelled, which cancels the query in the runtime and on every engine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse

from primflow.serve.service import RunningQuery
from primflow.session.session import Answer

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_END = object()


def sse(data: Any, event: str | None = None) -> str:
    """One event; ``data`` is sent as JSON (strings as given, e.g. OpenAI's ``[DONE]``)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return head + "".join(f"data: {line}\n" for line in payload.split("\n")) + "\n"


class EventQueue:
    """Callbacks for one query that put its events on a queue, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def on_text(self, text: str) -> None:
        self.queue.put_nowait(("token", text))

    def on_node(self, event: dict[str, Any]) -> None:
        self.queue.put_nowait(("node_done", event))

    def close_when_done(self, query: RunningQuery) -> None:
        query.task.add_done_callback(lambda _task: self.queue.put_nowait(_END))

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            yield item


def stream_query(
    query: RunningQuery,
    events: EventQueue,
    render: Callable[[RunningQuery, EventQueue], AsyncIterator[str]],
) -> StreamingResponse:
    async def body() -> AsyncIterator[str]:
        try:
            async for chunk in render(query, events):
                yield chunk
        finally:
            if not query.task.done():  # the client left mid-stream: cancel its query
                query.task.cancel()

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


def outcome(query: RunningQuery) -> tuple[Answer | None, BaseException | None]:
    """The ended task's answer or error (a cancellation counts as an error)."""
    task = query.task
    if task.cancelled():
        return None, asyncio.CancelledError()
    error = task.exception()
    return (None, error) if error is not None else (task.result(), None)
