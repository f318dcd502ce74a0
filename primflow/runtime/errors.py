"""Why a query did not produce a result. Every error names the query; a failure also
names the engine and the primitive that failed, so the caller knows where to look."""

from __future__ import annotations


class QueryError(Exception):
    """Base class: the query ``query_id`` ended without a result.

    Examples:
        >>> from primflow import QueryCancelled, QueryError, QueryFailed, QueryTimeout
        >>> all(issubclass(e, QueryError) for e in (QueryCancelled, QueryFailed, QueryTimeout))
        True
        >>> error = QueryCancelled("q1", "cancelled by the user")
        >>> isinstance(error, QueryError), error.query_id, str(error)
        (True, 'q1', "query 'q1' was cancelled by the user")
    """

    def __init__(self, query_id: str, message: str) -> None:
        super().__init__(message)
        self.query_id = query_id


class QueryTimeout(QueryError, TimeoutError):
    """The query's deadline passed; its queued and running work was dropped.

    Examples:
        >>> import asyncio
        >>> from primflow import Embed, EngineKind, Query, Runtime, build_template, lower_query
        >>> from primflow.testing.fakes import make_fake_engines
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> template = build_template("embed_question", embed, outputs={"vectors": "vectors"})
        >>> lowered = lower_query(template, Query("What is HNSW?"))
        >>> def fake_embedder():
        ...     return make_fake_engines({"embedder": EngineKind.EMBEDDER}, latency_scale=0.0)
        >>> from primflow import QueryTimeout
        >>> async def main():
        ...     engines = fake_embedder()
        ...     engines["embedder"].block("embed")  # holds the primitive until released
        ...     async with Runtime(engines) as runtime:
        ...         try:
        ...             await runtime.run(lowered.graph, lowered.inputs, deadline_s=0.01)
        ...         except QueryTimeout as timeout:
        ...             return timeout.deadline_s, timeout.pending_nodes
        >>> asyncio.run(main())
        (0.01, ['embed', 'output.vectors'])
    """

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
    """The query was cancelled (``Runtime.cancel`` or its caller's task was cancelled).

    Examples:
        >>> import asyncio
        >>> from primflow import Embed, EngineKind, Query, Runtime, build_template, lower_query
        >>> from primflow.testing.fakes import make_fake_engines
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> template = build_template("embed_question", embed, outputs={"vectors": "vectors"})
        >>> lowered = lower_query(template, Query("What is HNSW?"))
        >>> def fake_embedder():
        ...     return make_fake_engines({"embedder": EngineKind.EMBEDDER}, latency_scale=0.0)
        >>> from primflow import QueryCancelled
        >>> async def main():
        ...     async with Runtime(fake_embedder()) as runtime:
        ...         future = runtime.submit(lowered.graph, lowered.inputs, query_id="q1")
        ...         runtime.cancel("q1", reason="cancelled by the user")
        ...         try:
        ...             await future
        ...         except QueryCancelled as cancelled:
        ...             return str(cancelled)
        >>> asyncio.run(main())
        "query 'q1' was cancelled by the user"
    """

    def __init__(self, query_id: str, reason: str = "cancelled") -> None:
        super().__init__(query_id, f"query {query_id!r} was {reason}")


class QueryFailed(QueryError):
    """A primitive of the query failed on an engine (or inline).

    Examples:
        >>> import asyncio
        >>> from primflow import Embed, EngineKind, Query, Runtime, build_template, lower_query
        >>> from primflow.testing.fakes import make_fake_engines
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> template = build_template("embed_question", embed, outputs={"vectors": "vectors"})
        >>> lowered = lower_query(template, Query("What is HNSW?"))
        >>> def fake_embedder():
        ...     return make_fake_engines({"embedder": EngineKind.EMBEDDER}, latency_scale=0.0)
        >>> from primflow import QueryFailed
        >>> async def main():
        ...     engines = fake_embedder()
        ...     engines["embedder"].fail_on("embed", "out of memory")
        ...     async with Runtime(engines) as runtime:
        ...         try:
        ...             await runtime.run(lowered.graph, lowered.inputs, query_id="q1")
        ...         except QueryFailed as failed:
        ...             return failed.node, failed.engine, str(failed)
        >>> asyncio.run(main())
        ('embed', 'embedder',
         "query 'q1': engine 'embedder' failed primitive 'embed': ...out of memory")
    """

    def __init__(self, query_id: str, node: str, engine: str | None, reason: str) -> None:
        where = f"engine {engine!r} failed primitive {node!r}" if engine else f"primitive {node!r}"
        super().__init__(query_id, f"query {query_id!r}: {where}: {reason}")
        self.node = node
        self.engine = engine
        self.reason = reason
