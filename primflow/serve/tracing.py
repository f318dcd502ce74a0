"""What the server keeps for tracing, apart from the rest of serve: the explain
recorder behind ``GET /trace/{query_id}`` (``routes_trace.py``) and, when
``PRIMFLOW_TRACE`` names an exporter, the OpenTelemetry hook.

``ServeTracing`` is what the service holds: ``hooks(stack)`` gives the session its
hooks (the recorder's batch log, plus the OTel hook when tracing is on),
``bind(session)`` tells the recorder the passes, ``record(answer)`` keeps a finished
answer (the last ``MAX_NUM_TRACED_QUERIES``).
"""

from __future__ import annotations

from primflow.explain.recorder import ExplainRecorder
from primflow.runtime.hooks import Hook
from primflow.session.session import Answer, Session
from primflow.session.stack import EngineStack
from primflow.tracing.setup import tracing_hooks

MAX_NUM_TRACED_QUERIES = 64


class ServeTracing:
    def __init__(self, max_num_queries: int = MAX_NUM_TRACED_QUERIES) -> None:
        self.max_num_queries = max_num_queries
        self.recorder: ExplainRecorder | None = None

    def hooks(self, stack: EngineStack) -> list[Hook]:
        self.recorder = ExplainRecorder(stack.budget, (), self.max_num_queries)
        return [*self.recorder.hooks, *tracing_hooks()]

    def bind(self, session: Session) -> None:
        if self.recorder is not None:
            self.recorder.passes = list(session.optimizer.passes)

    def record(self, answer: Answer) -> None:
        if self.recorder is not None:
            self.recorder.record(answer)
