"""The events of one question as it runs: the answer's text as it is decoded, each
engine primitive as it ends, and the final answer.

:meth:`Session.stream <primflow.session.Session.stream>` yields them; ``Session.ask``
consumes the same stream and turns it into its ``on_text`` / ``on_progress`` callbacks,
so there is one mechanism. Invariants:

- Events arrive in the order they happened on the event loop; every :class:`TokenEvent`
  and :class:`NodeDoneEvent` of a query comes before its one :class:`AnswerEvent`,
  which is always the last event (a failed query raises its error instead).
- Closing the stream before the answer (``break`` out of ``async for``, ``aclose()``,
  or cancelling the task that iterates it) cancels the query: the runtime drops its
  queued work and the engines abort its state. ``aclose()`` returns once that is done.
- Inline ops (inputs, outputs, conditions, aggregates) are not engine primitives:
  they produce no :class:`NodeDoneEvent` and do not count in ``num_total``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from primflow.graph.ir import INLINE_OPS, Graph, Node
from primflow.runtime import NodeTiming

if TYPE_CHECKING:
    from primflow.session.answer import Answer

OnText = Callable[[str], None]
# Called as each engine primitive ends: (node, number done, number in the graph).
OnProgress = Callable[[Node, int, int], None]


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """A piece of the answer's text, as the final decode produced it.

    ``node`` is the decode that produced it (the one feeding the ``answer`` output).

    Examples:
        >>> import asyncio
        >>> from primflow import EngineStack, Session, TokenEvent
        >>> from primflow.session import fake_factory
        >>> async def stream(question, documents):
        ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        ...     async with stack, Session(stack) as session:
        ...         return [e async for e in session.stream("naive_rag", question, documents)]
        >>> events = asyncio.run(stream("How much leave?", ["Employees get 25 days."]))
        >>> tokens = [e for e in events if isinstance(e, TokenEvent)]
        >>> tokens[0].node, "".join(t.text for t in tokens).strip() == events[-1].answer.text
        ('synthesize.decode', True)
    """

    query_id: str
    node: str
    text: str


@dataclass(frozen=True, slots=True)
class NodeDoneEvent:
    """An engine primitive of the query ended: ``num_done`` of ``num_total`` so far.

    ``timing`` says when it became ready, started and ended, on which engine and in a
    batch of how many requests.

    Examples:
        >>> import asyncio
        >>> from primflow import EngineStack, NodeDoneEvent, Session
        >>> from primflow.session import fake_factory
        >>> async def stream(question, documents):
        ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        ...     async with stack, Session(stack) as session:
        ...         return [e async for e in session.stream("naive_rag", question, documents)]
        >>> events = asyncio.run(stream("How much leave?", ["Employees get 25 days."]))
        >>> done = [e for e in events if isinstance(e, NodeDoneEvent)]
        >>> done[-1].node.name, done[-1].num_done == done[-1].num_total, done[-1].timing.engine
        ('synthesize.decode', True, 'llm')
    """

    query_id: str
    node: Node
    num_done: int
    num_total: int
    timing: NodeTiming


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    """The query's :class:`~primflow.Answer`: the stream's last event.

    Examples:
        >>> import asyncio
        >>> from primflow import AnswerEvent, EngineStack, Session
        >>> from primflow.session import fake_factory
        >>> async def last_event(question, documents):
        ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        ...     async with stack, Session(stack) as session:
        ...         async for event in session.stream("naive_rag", question, documents):
        ...             pass
        ...         return event
        >>> event = asyncio.run(last_event("How much leave?", ["Employees get 25 days."]))
        >>> isinstance(event, AnswerEvent), event.query_id, event.answer.passages[0].chunk.source
        (True, 'naive_rag-0', 'doc-0')
    """

    answer: Answer

    @property
    def query_id(self) -> str:
        return self.answer.query_id


StreamEvent: TypeAlias = TokenEvent | NodeDoneEvent | AnswerEvent


class EventSink:
    """Collects one query's events, on the event loop, for :func:`stream_events`.

    The session calls :meth:`begin` once the query's graph is known, then hands
    :meth:`text_of` callbacks to the answer's decodes and :meth:`node_done` to the
    runtime's node-done events.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
        self._graph: Graph | None = None
        self.query_id = ""
        self.num_total = 0
        self.num_done = 0

    def begin(self, query_id: str, graph: Graph) -> None:
        self.query_id = query_id
        self._graph = graph
        self.num_total = sum(1 for n in graph if n.op not in INLINE_OPS)

    def set_graph(self, graph: Graph) -> None:
        """The graph grew (a loop appended a round): count the primitives it now has."""
        self._graph = graph
        self.num_total = sum(1 for n in graph if n.op not in INLINE_OPS)

    def text_of(self, node: str) -> OnText:
        def on_text(text: str) -> None:
            self._queue.put_nowait(TokenEvent(self.query_id, node, text))

        return on_text

    def node_done(self, name: str, timing: NodeTiming) -> None:
        assert self._graph is not None, "begin() comes before any node ends"
        if name not in self._graph:  # a baseline's helper node, outside the graph
            return
        node = self._graph.node(name)
        if node.op in INLINE_OPS:
            return
        self.num_done += 1
        event = NodeDoneEvent(self.query_id, node, self.num_done, self.num_total, timing)
        self._queue.put_nowait(event)

    def end(self, _task: object = None) -> None:
        self._queue.put_nowait(None)

    async def next(self) -> StreamEvent | None:
        return await self._queue.get()


async def stream_events(
    run: Callable[[EventSink], Awaitable[Answer]],
) -> AsyncGenerator[StreamEvent, None]:
    """Run ``run(sink)`` as a task and yield the events it reports, then its answer.

    Leaving early (the consumer closes the generator or is cancelled) cancels the task,
    and so the query, and waits until the task has ended."""
    sink = EventSink()
    task = asyncio.ensure_future(run(sink))
    task.add_done_callback(sink.end)
    try:
        while (event := await sink.next()) is not None:
            yield event
        yield AnswerEvent(task.result())
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure after closing is not logged
