"""Tracing: OpenTelemetry spans for queries, and the batch log behind ``explain``.

- ``setup``: turns tracing on from ``PRIMFLOW_TRACE`` (off by default, and then free:
  no hook, OpenTelemetry never imported); the ``trace`` extra provides the SDK.
- ``otel``: ``OtelHook``, a runtime hook that emits a trace per query (a span per
  primitive, batch spans linked to the primitives they served).
- ``asgi``: the middleware that continues an HTTP request's ``traceparent``.
- ``logs``: ``TraceIdFilter``, which adds ``trace_id`` to log records.
- ``batches``: ``BatchLog``, the hook that remembers which batch ran each primitive and
  who shared it (needs no OpenTelemetry).
"""

from primflow.tracing.batches import BatchLog, BatchRecord
from primflow.tracing.logs import TraceIdFilter
from primflow.tracing.setup import TRACE_ENV, TracingUnavailable, is_available, tracing_hooks

__all__ = [
    "TRACE_ENV",
    "BatchLog",
    "BatchRecord",
    "TraceIdFilter",
    "TracingUnavailable",
    "is_available",
    "tracing_hooks",
]
