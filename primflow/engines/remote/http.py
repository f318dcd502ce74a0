"""The HTTP side of remote engines: one pooled client per engine, errors, retries, SSE.

Invariants:

- One ``httpx.AsyncClient`` per engine, HTTP/1.1 with keep-alive, at most
  ``max_concurrent_requests`` requests in flight (the pool holds as many connections),
  so a busy engine reuses its connections instead of opening new ones.
- Requests waiting for one of those slots get it in the order of their ``order`` key
  (smallest first, then arrival): the engine passes its scheduling policy's key, so a
  server that serves one request at a time and takes no priority field (llama.cpp's
  servers) still serves the critical path first when ``max_concurrent_requests`` is 1.
- Every failure is a :class:`RemoteError` whose message names the URL and what went
  wrong (connection refused, timeout, HTTP status with the server's own words, a
  malformed stream); engines turn it into an ``EngineError`` naming engine and node.
- Retries (with exponential backoff) only for idempotent requests, and only for
  failures a retry can cure (connection errors, timeouts, 429, 5xx); a streamed decode
  is never retried: half of its answer may already have been used.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ERROR_BODY_CHARS = 300


class RemoteError(RuntimeError):
    """A request to a remote engine failed; the message names the URL and why."""

    def __init__(self, url: str, reason: str, *, is_retryable: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.is_retryable = is_retryable


@dataclass(frozen=True, slots=True)
class ClientSettings:
    base_url: str
    api_key: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    max_concurrent_requests: int = 16
    max_retries: int = 2
    backoff_s: float = 0.2


OrderKey = tuple[float, ...]


class OrderedSlots:
    """At most ``num_slots`` holders at once; waiters get a freed slot smallest
    ``order`` key first (ties: first come). A cancelled waiter gives up its place, or
    passes on a slot it was handed but never used."""

    def __init__(self, num_slots: int) -> None:
        self._num_free = num_slots
        self._waiting: list[tuple[OrderKey, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, order: OrderKey) -> None:
        if self._num_free > 0 and not self._waiting:
            self._num_free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (order, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot, then cancelled: the next waiter takes it
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():  # cancelled waiters are skipped here
                future.set_result(None)
                return
        self._num_free += 1

    @asynccontextmanager
    async def slot(self, order: OrderKey) -> AsyncIterator[None]:
        await self.acquire(order)
        try:
            yield
        finally:
            self.release()


class RemoteClient:
    """A pooled async HTTP client for one server (created lazily on the running loop)."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None
        self._slots: OrderedSlots | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _ensure(self) -> tuple[httpx.AsyncClient, OrderedSlots]:
        if self._client is None or self._slots is None:
            s = self.settings
            headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
            limits = httpx.Limits(
                max_connections=s.max_concurrent_requests,
                max_keepalive_connections=s.max_concurrent_requests,
            )
            timeout = httpx.Timeout(s.read_timeout_s, connect=s.connect_timeout_s)
            self._client = httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout)
            self._slots = OrderedSlots(s.max_concurrent_requests)
        return self._client, self._slots

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client = None
        self._slots = None

    async def get_json(self, path: str) -> Any:
        client, _ = self._ensure()
        url = self.url(path)
        try:
            response = await client.get(url)
        except httpx.HTTPError as err:
            raise _transport_error(url, err) from err
        return _json_body(url, response)

    async def post_json(
        self, path: str, body: dict[str, Any], *, is_idempotent: bool, order: OrderKey = ()
    ) -> Any:
        """POST ``body``; retried with backoff when ``is_idempotent`` and the failure may pass."""
        attempts = 1 + (self.settings.max_retries if is_idempotent else 0)
        for attempt in range(attempts):
            try:
                return await self._post_once(path, body, order)
            except RemoteError as err:
                if not err.is_retryable or attempt == attempts - 1:
                    raise
            await asyncio.sleep(self.settings.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    async def _post_once(self, path: str, body: dict[str, Any], order: OrderKey) -> Any:
        client, slots = self._ensure()
        url = self.url(path)
        async with slots.slot(order):
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError as err:
                raise _transport_error(url, err) from err
        return _json_body(url, response)

    @asynccontextmanager
    async def stream_events(
        self, path: str, body: dict[str, Any], order: OrderKey = ()
    ) -> AsyncIterator[_Events]:
        """POST ``body`` and iterate its server-sent events (parsed JSON), until [DONE].

        Leaving the block closes the connection: that is how a decode is aborted (the
        server sees the client go away and stops generating).
        """
        client, slots = self._ensure()
        url = self.url(path)
        async with slots.slot(order):
            try:
                async with client.stream("POST", url, json=body) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise _status_error(url, response)
                    yield _Events(url, response)
            except httpx.HTTPError as err:
                raise _transport_error(url, err) from err


class _Events:
    """The parsed ``data:`` events of one SSE response."""

    def __init__(self, url: str, response: httpx.Response) -> None:
        self.url = url
        self._response = response
        self.num_events = 0

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        async for line in self._response.aiter_lines():
            line = line.strip()
            if not line.startswith("data:"):
                continue  # comments (pings), event names, blank separators
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                raise RemoteError(
                    self.url,
                    f"malformed stream: event {self.num_events} is not JSON: {data[:80]!r}",
                ) from None
            if not isinstance(event, dict):
                raise RemoteError(self.url, f"malformed stream: event {event!r} is not an object")
            if "error" in event:
                raise RemoteError(self.url, f"the server reported an error: {event['error']}")
            self.num_events += 1
            yield event
        raise RemoteError(
            self.url, f"the stream ended after {self.num_events} events without [DONE]"
        )


def _transport_error(url: str, err: httpx.HTTPError) -> RemoteError:
    if isinstance(err, httpx.ConnectError):
        return RemoteError(url, f"connection refused or unreachable ({err})", is_retryable=True)
    if isinstance(err, httpx.TimeoutException):
        return RemoteError(url, f"timed out ({type(err).__name__})", is_retryable=True)
    if isinstance(err, httpx.RemoteProtocolError | httpx.ReadError):
        return RemoteError(url, f"the server closed the connection mid-response ({err})")
    return RemoteError(url, f"{type(err).__name__}: {err}", is_retryable=True)


def _status_error(url: str, response: httpx.Response) -> RemoteError:
    text = response.text[:MAX_ERROR_BODY_CHARS].strip()
    return RemoteError(
        url,
        f"HTTP {response.status_code}: {text}",
        is_retryable=response.status_code in RETRY_STATUSES,
    )


def _json_body(url: str, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise _status_error(url, response)
    try:
        return response.json()
    except ValueError:
        raise RemoteError(url, f"the response is not JSON: {response.text[:80]!r}") from None
