"""The W3C ``traceparent`` header for an outgoing request to a remote engine.

``trace_headers()`` returns the current OpenTelemetry context as headers
(``traceparent``, ``tracestate``), or ``{}`` when OpenTelemetry is not installed or no
span is current, so the remote server can continue the primitive's trace. The runtime's
tracing hook makes the primitive's (or its batch's) span current while the engine
submits (``primflow/tracing/otel.py``); tasks the engine starts then inherit it.
"""

from __future__ import annotations

try:
    from opentelemetry import propagate
except ImportError:  # the trace extra is not installed: send no trace context
    propagate = None  # type: ignore[assignment]


def trace_headers() -> dict[str, str]:
    if propagate is None:
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers
