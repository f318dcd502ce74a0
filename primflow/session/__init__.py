"""Serving applications end to end on the embedded engines: the engine stack, the
query session, and per-query timings with the measured critical path."""

from primflow.session.factories import (
    EmbeddedSettings,
    EngineUnavailable,
    embedded_factory,
    fake_factory,
)
from primflow.session.session import SCHEMES, Answer, Session, answer_decode_nodes
from primflow.session.stack import ENGINE_KINDS, EngineStack, StackError, engines_for_apps
from primflow.session.timing import PrimitiveTiming, TimingReport, critical_path, timing_report

__all__ = [
    "ENGINE_KINDS",
    "SCHEMES",
    "Answer",
    "EmbeddedSettings",
    "EngineStack",
    "EngineUnavailable",
    "PrimitiveTiming",
    "Session",
    "StackError",
    "TimingReport",
    "answer_decode_nodes",
    "critical_path",
    "embedded_factory",
    "engines_for_apps",
    "fake_factory",
    "timing_report",
]
