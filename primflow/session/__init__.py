"""Serving applications end to end on the embedded engines: the engine stack, the
query session and its event stream, the synchronous :func:`run` helper, and per-query
timings with the measured critical path."""

from primflow.session.answer import Answer
from primflow.session.events import AnswerEvent, NodeDoneEvent, StreamEvent, TokenEvent
from primflow.session.factories import (
    EmbeddedSettings,
    EngineUnavailable,
    embedded_factory,
    fake_factory,
)
from primflow.session.query_hook import answer_decode_nodes
from primflow.session.session import SCHEMES, Session
from primflow.session.stack import ENGINE_KINDS, EngineStack, StackError, engines_for_apps
from primflow.session.sync import run
from primflow.session.timing import PrimitiveTiming, TimingReport, critical_path, timing_report

__all__ = [
    "ENGINE_KINDS",
    "SCHEMES",
    "Answer",
    "AnswerEvent",
    "EmbeddedSettings",
    "EngineStack",
    "EngineUnavailable",
    "NodeDoneEvent",
    "PrimitiveTiming",
    "Session",
    "StackError",
    "StreamEvent",
    "TimingReport",
    "TokenEvent",
    "answer_decode_nodes",
    "critical_path",
    "embedded_factory",
    "engines_for_apps",
    "fake_factory",
    "run",
    "timing_report",
]
