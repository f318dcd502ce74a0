"""Logging through the standard library: primflow's loggers (``primflow.*``) and how the
command line shows them.

Library code only calls ``logging.getLogger(__name__)``; nothing is configured until an
application (the ``primflow`` command, or a user's script) calls :func:`setup_logging`.
Invariants:

- Every record goes to one handler on stderr (never stdout: stdout carries results).
- Levels: the default shows warnings and errors; ``verbosity`` +1 (``-v``) adds
  primflow's info lines, +2 (``-vv``) its debug lines; -1 (``-q``) shows errors only.
  Other libraries' records show from warnings up (errors only with ``-q``).
- ``warnings.warn`` calls are logged too (logger ``py.warnings``).
- Context fields: a record carries the fields of the :func:`log_context` it was logged
  in (a ``contextvars`` value, so each asyncio task has its own), or given with
  ``extra={...}``; the session logs inside ``log_context(query_id=...)``. To add a
  field (e.g. a trace id), log inside ``log_context(trace_id=...)`` and add its name to
  :data:`CONTEXT_FIELDS`: both formats then show it.
- ``json``: one JSON object per line with ``time`` (UTC, ISO 8601), ``level``,
  ``logger``, ``message``, the context fields that are set, and ``exception`` (the
  traceback) when there is one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")

# The context fields a line may carry, in the order they are shown.
CONTEXT_FIELDS: list[str] = ["query_id"]

_context: ContextVar[Mapping[str, Any] | None] = ContextVar("primflow_log_context", default=None)
_HANDLER_NAME = "primflow"


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Records logged inside this block (in this task and the tasks it starts) carry
    ``fields``; inner blocks add to (or override) the outer ones."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields of ``record`` that are set (``extra=`` wins over the context)."""
    current = _context.get() or {}
    found: dict[str, Any] = {}
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, current.get(name))
        if value is not None:
            found[name] = value
    return found


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message [field=value ...]``, then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name}: {record.getMessage()}"
        fields = context_fields(record)
        if fields:
            line += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, so a handler set
    up once keeps working when ``sys.stderr`` is replaced (as test runners do)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def levels_for(verbosity: int) -> tuple[int, int]:
    """(primflow's level, other loggers' level) for a ``-v`` count (``-q``: -1)."""
    if verbosity < 0:
        return logging.ERROR, logging.ERROR
    primflow_level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    return primflow_level, logging.WARNING


def setup_logging(
    verbosity: int = 0, log_format: str = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Send log records to ``stream`` (default: stderr) in ``log_format`` at the levels
    ``verbosity`` selects; calling it again replaces the previous set-up."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r} (known: {', '.join(LOG_FORMATS)})")
    primflow_level, other_level = levels_for(verbosity)
    handler: logging.Handler = StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(other_level)
    logging.getLogger("primflow").setLevel(primflow_level)
    logging.captureWarnings(True)
    return handler
