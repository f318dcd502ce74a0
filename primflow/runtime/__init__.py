"""Running e-graphs: the graph scheduler, per-query state, hooks, clock and errors.

``Runtime`` is the entry point; see ``runtime/runtime.py``.
"""

from primflow.runtime.errors import QueryCancelled, QueryError, QueryFailed, QueryTimeout
from primflow.runtime.hooks import Hook, RecordingHook
from primflow.runtime.query_state import NodeStatus, NodeTiming, QueryResult
from primflow.runtime.runtime import Runtime

__all__ = [
    "Hook",
    "NodeStatus",
    "NodeTiming",
    "QueryCancelled",
    "QueryError",
    "QueryFailed",
    "QueryResult",
    "QueryTimeout",
    "RecordingHook",
    "Runtime",
]
