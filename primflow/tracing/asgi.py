"""An ASGI middleware that continues an incoming request's W3C trace context.

``TraceContextMiddleware`` reads ``traceparent`` / ``tracestate`` from each HTTP
request, starts a ``primflow.http`` server span as their child (a new trace when the
request has none) and makes it the current context while the request runs. A query
the request starts runs in a task created inside it, which inherits that context, so
the query's trace is a child of the caller's. The response carries the server span
as ``traceparent``. With no OpenTelemetry installed, or tracing off, it passes
requests through untouched (``wrap_asgi`` returns the app itself).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TraceContextMiddleware:
    def __init__(self, app: AsgiApp) -> None:
        from opentelemetry import trace

        self.app = app
        self.tracer = trace.get_tracer("primflow.serve")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = propagate.extract(carrier)
        method, path = scope.get("method", "GET"), scope.get("path", "")
        span = self.tracer.start_span(
            f"primflow.http {method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        token = context.attach(trace.set_span_in_context(span, parent))

        async def send_traced(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                headers: dict[str, str] = {}
                propagate.inject(headers)
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        finally:
            span.end()
            context.detach(token)


def wrap_asgi(app: AsgiApp, is_enabled: bool) -> AsgiApp:
    """``app`` behind :class:`TraceContextMiddleware` when tracing is enabled."""
    return TraceContextMiddleware(app) if is_enabled else app
