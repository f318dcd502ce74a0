"""Request guards: the API key, body-size limits and content types.

- API key: when set, every ``/v1`` route and ``/metrics`` need
  ``Authorization: Bearer <key>`` (compared in constant time); ``/health`` and
  ``/ready`` stay open for probes. A missing or wrong key is a 401.
- ``BodyLimit`` is plain ASGI middleware (so streaming and disconnects pass through
  untouched): it reads a body up to the route's limit and answers 413 past it,
  before any route sees a byte; a declared ``Content-Length`` over it is refused
  unread.
- JSON routes refuse other content types with 415.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import Request

from primflow.serve.errors import api_error

UPLOAD_PATH_PREFIX = "/v1/collections/"


async def require_api_key(request: Request) -> None:
    expected: str | None = request.app.state.service.settings.api_key
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    is_valid = scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), expected.encode()
    )
    if not is_valid:
        raise api_error(
            401, "unauthorized", "a valid API key is required: Authorization: Bearer KEY"
        )


async def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise api_error(
            415,
            "unsupported_media_type",
            f"send the body as application/json, not {content_type[:80]!r}",
        )


class BodyLimit:
    def __init__(self, app: Any, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        is_upload = scope["path"].startswith(UPLOAD_PATH_PREFIX)
        limit = self.max_upload_bytes if is_upload else self.max_body_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before the end
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        is_replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal is_replayed
            if not is_replayed:
                is_replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()
            return message  # later: http.disconnect, for streaming responses

        await self.app(scope, replay, send)


async def _too_large(send: Any, limit: int) -> None:
    error = api_error(413, "too_large", f"the request body is over the limit of {limit} bytes")
    payload = json.dumps(error.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
