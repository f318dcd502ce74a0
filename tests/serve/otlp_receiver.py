"""Trace backends for the OTLP round-trip test: what a span looks like read back.

- ``OtlpReceiver``: a minimal OTLP/HTTP trace receiver on a free loopback port (a
  thread of the test process). It decodes each ``ExportTraceServiceRequest``
  (protobuf, optionally gzip) with ``opentelemetry-proto`` and keeps every span,
  links included, exactly as the exporter sent it.
- ``PhoenixServer``: Arize Phoenix (``arize-phoenix``, the ``phoenix`` extra), a real
  backend LlamaIndex and LangChain users trace to, started as ``phoenix serve`` in a
  subprocess on free loopback ports, offline; spans are read back through its REST API.
  Phoenix keeps no span links, so its spans have ``links=None``.

Both are context managers that always stop what they started, and both answer
``spans()`` with :class:`ReceivedSpan` values, so one test checks either.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from serve_process import stop_process

MAX_PHOENIX_START_S = 120.0  # ~20 s on a loaded 2-core machine


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str | None
    attributes: dict[str, Any]
    links: list[tuple[str, str]] | None  # (trace id, span id); None: the backend drops links


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind is not None else None


def decode_export(body: bytes) -> list[ReceivedSpan]:
    """The spans of one serialized ``ExportTraceServiceRequest``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        attributes={a.key: _any_value(a.value) for a in span.attributes},
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                    )
                )
    return spans


class OtlpReceiver:
    """Receives OTLP/HTTP protobuf exports at ``{url}/v1/traces``."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404, f"no OTLP signal at {self.path}")
                    return
                spans = decode_export(body)
                with receiver._lock:
                    receiver._spans.extend(spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")  # an empty ExportTraceServiceResponse
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PhoenixServer:
    """``phoenix serve`` on free loopback ports, its data in ``working_dir``."""

    def __init__(self, working_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            "PHOENIX_WORKING_DIR": str(working_dir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        }
        self.log = working_dir / "phoenix.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PhoenixServer:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "phoenix.server.main", "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + MAX_PHOENIX_START_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("Phoenix did not start:\n" + self.log.read_text(errors="replace"))

    def spans(self) -> list[ReceivedSpan]:
        spans: list[ReceivedSpan] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{self.url}/v1/projects/default/spans", params=params, timeout=10)
            page.raise_for_status()
            body = page.json()
            for span in body["data"]:
                context = span["context"]
                spans.append(
                    ReceivedSpan(
                        span["name"],
                        context["trace_id"],
                        context["span_id"],
                        span["parent_id"],
                        span["attributes"],
                        links=None,
                    )
                )
            cursor = body.get("next_cursor")
            if not cursor:
                return spans

    def __exit__(self, *exc_info: Any) -> None:
        stop_process(self.proc)
