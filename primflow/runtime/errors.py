"""Why a query did not produce a result. Every error names the query; a failure also
names the engine and the primitive that failed, so the caller knows where to look."""

from __future__ import annotations


class QueryError(Exception):
    """Base class: the query ``query_id`` ended without a result."""

    def __init__(self, query_id: str, message: str) -> None:
        super().__init__(message)
        self.query_id = query_id


class QueryTimeout(QueryError, TimeoutError):
    """The query's deadline passed; its queued and running work was dropped."""

    def __init__(self, query_id: str, deadline_s: float, pending_nodes: list[str]) -> None:
        unfinished = ", ".join(pending_nodes[:8]) or "none"
        more = f" (+{len(pending_nodes) - 8} more)" if len(pending_nodes) > 8 else ""
        super().__init__(
            query_id,
            f"query {query_id!r} missed its deadline of {deadline_s:g} s; "
            f"unfinished: {unfinished}{more}",
        )
        self.deadline_s = deadline_s
        self.pending_nodes = pending_nodes


class QueryCancelled(QueryError):
    """The query was cancelled (``Runtime.cancel`` or its caller's task was cancelled)."""

    def __init__(self, query_id: str, reason: str = "cancelled") -> None:
        super().__init__(query_id, f"query {query_id!r} was {reason}")


class QueryFailed(QueryError):
    """A primitive of the query failed on an engine (or inline)."""

    def __init__(self, query_id: str, node: str, engine: str | None, reason: str) -> None:
        where = f"engine {engine!r} failed primitive {node!r}" if engine else f"primitive {node!r}"
        super().__init__(query_id, f"query {query_id!r}: {where}: {reason}")
        self.node = node
        self.engine = engine
        self.reason = reason
