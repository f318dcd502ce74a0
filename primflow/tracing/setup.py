"""Turning tracing on: an OpenTelemetry tracer provider with the configured exporter.

Tracing is off by default and costs nothing then: no hook is installed and
OpenTelemetry is never imported. It is on when the ``PRIMFLOW_TRACE`` environment
variable (or a command's ``--trace``) names an exporter:

- ``console``: spans as JSON on stderr (the SDK's console exporter);
- ``otlp``: OTLP over HTTP/protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default
  ``http://localhost:4318``), the exporter's own environment variables apply;
- ``off`` (or unset): no tracing.

Both need the ``trace`` extra (``pip install 'primflow[trace]'``); naming an exporter
without it is an error that says so. The provider is installed once per process as
the global one (``OTEL_SERVICE_NAME`` names the service, default ``primflow``), so the
serve middleware and the remote engines' ``traceparent`` use the same one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from primflow.runtime.hooks import Hook

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

TRACE_ENV = "PRIMFLOW_TRACE"
EXPORTERS = ("off", "console", "otlp")

_provider: TracerProvider | None = None


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but cannot be set up; the message says why."""


def is_available() -> bool:
    """Whether the OpenTelemetry SDK (the ``trace`` extra) is installed."""
    return importlib.util.find_spec("opentelemetry.sdk") is not None


def exporter_from_env() -> str:
    """The exporter ``PRIMFLOW_TRACE`` names (``off`` when unset)."""
    value = os.environ.get(TRACE_ENV, "").strip().lower() or "off"
    if value not in EXPORTERS:
        raise TracingUnavailable(
            f"{TRACE_ENV}={value!r} is not an exporter (choose: {', '.join(EXPORTERS)})"
        )
    return value


def configure(exporter: str) -> TracerProvider | None:
    """Install the global tracer provider exporting to ``exporter`` (once per process;
    later calls return the first provider). None for ``off``."""
    global _provider
    if exporter not in EXPORTERS:
        raise TracingUnavailable(f"unknown trace exporter {exporter!r} (choose: {EXPORTERS})")
    if exporter == "off":
        return None
    if _provider is not None:
        return _provider
    if not is_available():
        raise TracingUnavailable(
            f"tracing to {exporter!r} needs OpenTelemetry: pip install 'primflow[trace]'"
        )
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    service = os.environ.get("OTEL_SERVICE_NAME", "primflow")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TracingUnavailable(
                "the otlp exporter needs opentelemetry-exporter-otlp-proto-http: "
                "pip install 'primflow[trace]'"
            ) from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def tracing_hooks(exporter: str | None = None) -> list[Hook]:
    """The hooks that trace queries: ``[]`` when tracing is off (the default), else
    one :class:`~primflow.tracing.otel.OtelHook` on the configured provider.
    ``exporter`` overrides ``PRIMFLOW_TRACE``."""
    chosen = exporter if exporter is not None else exporter_from_env()
    provider = configure(chosen)
    if provider is None:
        return []
    from primflow.tracing.otel import TRACER_NAME, OtelHook

    return [OtelHook(provider.get_tracer(TRACER_NAME))]


def shutdown() -> None:
    """Flush and stop the configured provider (exports what is buffered)."""
    if _provider is not None:
        _provider.shutdown()
