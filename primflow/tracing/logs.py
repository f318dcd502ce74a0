"""Trace ids on log records: a ``logging.Filter`` that adds ``record.trace_id``.

Add ``TraceIdFilter`` to the handlers of primflow's logging setup (it sets up no
logging itself). Each record gets ``trace_id``: the current span's trace id (32 hex
digits), else, for a record that carries a ``query_id`` attribute, the trace of that
query (from the ``OtelHook`` given), else ``""``. It never drops a record. Without
OpenTelemetry installed every record gets ``""``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from primflow.tracing.otel import OtelHook


class TraceIdFilter(logging.Filter):
    def __init__(self, hook: OtelHook | None = None) -> None:
        super().__init__()
        self.hook = hook
        try:
            from opentelemetry import trace
        except ImportError:
            self._trace = None
        else:
            self._trace = trace

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = self.trace_id(record)
        return True

    def trace_id(self, record: logging.LogRecord) -> str:
        if self._trace is not None:
            context = self._trace.get_current_span().get_span_context()
            if context.is_valid:
                return format(context.trace_id, "032x")
        query_id = getattr(record, "query_id", None)
        if self.hook is not None and isinstance(query_id, str):
            return self.hook.trace_id_of(query_id) or ""
        return ""
