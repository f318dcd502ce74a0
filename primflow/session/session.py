"""The query session: one question in, a streamed answer and its timings out.

``Session`` runs questions of any application (a built-in app's name, or an
:class:`~primflow.apps.App` of the user's own) on one :class:`EngineStack`, with any
scheme: ``primflow`` (lower -> optimize, cached -> the two-tier runtime) or a baseline
(``sequential``, ``parallel``: the unoptimized p-graph run module by module on the same
engines). Invariants:

- Several questions, of one app or several, may run at once on the same engines
  (co-location): each gets its own query id, and the engines keep their state apart.
- One mechanism reports a running question: :meth:`Session.stream` yields its events
  (``session/events.py``); :meth:`Session.ask` consumes that stream and calls its
  ``on_text`` / ``on_progress`` callbacks from it. The text streamed is the final
  decode's (the LLM decode that feeds the ``answer`` output), whatever the scheme.
- Leaving a stream early, or cancelling ``ask``, cancels the query in the runtime (or
  the baseline executor), which aborts its work on the engines.
- Optimized graphs are cached per (app, pass set, graph shape), so a repeated question
  shape pays lowering and a cache lookup only.
- A question asked against a persistent collection (``ask(..., collection=...)``) runs
  the app's template without its indexing part (``api/indexed.py``): its graph searches
  the collection and embeds only the question.
- An :class:`Answer` carries everything a report needs: text, passages, latency, the
  lowering and optimization time, and per-primitive timings with the critical path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from primflow.api.config import Query
from primflow.api.documents import Document
from primflow.api.indexed import IndexedTemplate, without_indexing
from primflow.api.template import Template
from primflow.apps import App, get_app
from primflow.baselines import ABLATIONS, BASELINES, Ablation, passes_named
from primflow.collections import Collection
from primflow.engines.base import EngineKind
from primflow.logging_setup import log_context
from primflow.passes import GraphCache, Optimizer
from primflow.runtime import Hook, Runtime
from primflow.session.answer import Answer
from primflow.session.events import (
    AnswerEvent,
    EventSink,
    NodeDoneEvent,
    OnProgress,
    OnText,
    StreamEvent,
    TokenEvent,
    stream_events,
)
from primflow.session.query_hook import SessionHook, answer_decode_nodes
from primflow.session.scheme_run import SchemeRunner
from primflow.session.stack import EngineStack

SCHEMES = ("primflow", *BASELINES)

_log = logging.getLogger(__name__)

__all__ = ["SCHEMES", "Answer", "OnProgress", "OnText", "Session", "answer_decode_nodes"]


class Session:
    """Answers questions on a started stack (see the module docstring).

    ``ask`` takes a built-in app's name or an :class:`~primflow.apps.App` of your own,
    lowers the question, optimizes the graph (cached per graph shape) and runs it.

    Examples:
        >>> import asyncio
        >>> from primflow import EngineStack, Session
        >>> from primflow.session import fake_factory
        >>> async def ask(question, documents):
        ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        ...     async with stack, Session(stack) as session:
        ...         return await session.ask("naive_rag", question, documents)
        >>> answer = asyncio.run(ask("How much leave?", ["Employees get 25 days of leave."]))
        >>> answer.scheme, answer.passages[0].chunk.text
        ('primflow', 'Employees get 25 days of leave.')
    """

    def __init__(
        self,
        stack: EngineStack,
        *,
        ablation: Ablation | str = "full",
        max_wait_ms: float = 2.0,
        hooks: Sequence[Hook] = (),
    ) -> None:
        """``hooks`` also watch the runtime (e.g. a server's metrics and per-query events)."""
        self.stack = stack
        self.ablation = ABLATIONS[ablation] if isinstance(ablation, str) else ablation
        self.optimizer = Optimizer(
            passes=passes_named(self.ablation.passes, stack.profiles), cache=GraphCache()
        )
        self._hook = SessionHook()
        self.runtime = Runtime(
            stack.borrowed(),
            policy=self.ablation.policy,
            max_wait_ms=max_wait_ms,
            hooks=[self._hook, *hooks],
            profiles=stack.profiles,
        )
        self._runner = SchemeRunner(
            stack, self.optimizer, self.runtime, self._hook, "+".join(self.ablation.passes)
        )
        self._apps: dict[str, tuple[App, Template]] = {}
        self._indexed: dict[str, IndexedTemplate] = {}
        self._is_started = False

    async def start(self) -> None:
        if not self._is_started:
            await self.stack.start()
            await self.runtime.start()
            self._is_started = True

    async def close(self) -> None:
        """Stops the runtime; the stack's engines stay up (their owner closes them)."""
        if self._is_started:
            await self.runtime.close()
            self._is_started = False

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ask(
        self,
        app: App | str,
        question: str,
        documents: Sequence[Document | str] = (),
        *,
        scheme: str = "primflow",
        on_text: OnText | None = None,
        on_progress: OnProgress | None = None,
        config_changes: Mapping[str, Any] | None = None,
        collection: Collection | None = None,
        query_id: str | None = None,
        deadline_s: float | None = None,
        priority: int = 0,
    ) -> Answer:
        """Answer ``question`` with ``app`` over ``documents``, or over a persistent
        ``collection`` (then the query skips indexing: its graph searches the
        collection and embeds only the question).

        ``on_text`` receives the answer's text as it is decoded, ``on_progress`` each
        engine primitive as it ends (both from :meth:`stream`'s events).
        ``query_id``: the caller's id (unique on the stack: ``stack.new_query_id``),
        so it can match hook events to this query before the answer exists.
        ``deadline_s``: seconds from the start of the run; past it the query ends in
        ``QueryTimeout`` (primflow scheme only: the baselines have no deadline).
        ``priority``: every engine serves a query of higher priority before queries of
        lower priority (0 by default; primflow scheme only)."""
        events = self._events(
            app,
            question,
            documents,
            scheme=scheme,
            config_changes=config_changes,
            collection=collection,
            query_id=query_id,
            deadline_s=deadline_s,
            priority=priority,
            is_text_streamed=on_text is not None,
        )
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, TokenEvent) and on_text is not None:
                    on_text(event.text)
                elif isinstance(event, NodeDoneEvent) and on_progress is not None:
                    on_progress(event.node, event.num_done, event.num_total)
                elif isinstance(event, AnswerEvent):
                    return event.answer
        raise AssertionError("an event stream ends with its answer or raises")

    def stream(
        self,
        app: App | str,
        question: str,
        documents: Sequence[Document | str] = (),
        *,
        scheme: str = "primflow",
        config_changes: Mapping[str, Any] | None = None,
        collection: Collection | None = None,
        query_id: str | None = None,
        deadline_s: float | None = None,
        priority: int = 0,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Answer like :meth:`ask`, as a stream of events: a
        :class:`~primflow.TokenEvent` per piece of the answer's text, a
        :class:`~primflow.NodeDoneEvent` per engine primitive that ends, and last an
        :class:`~primflow.AnswerEvent` with the :class:`Answer` (a failed query raises
        its error instead). Bad arguments raise here, before anything runs.

        Leaving the ``async for`` early (``break``, an exception) or calling the
        stream's ``aclose()`` cancels the query and frees its engine work; wrap the
        stream in ``contextlib.aclosing`` to have that happen at once at the end of
        the ``async with`` block, rather than when the stream is garbage-collected.

        Examples:
            >>> import asyncio
            >>> from primflow import AnswerEvent, EngineStack, Session, TokenEvent
            >>> from primflow.session import fake_factory
            >>> async def main():
            ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
            ...     async with stack, Session(stack) as session:
            ...         docs = ["Employees get 25 days of leave."]
            ...         async for event in session.stream("naive_rag", "How much leave?", docs):
            ...             if isinstance(event, TokenEvent):
            ...                 print(event.text, end="")
            ...             elif isinstance(event, AnswerEvent):
            ...                 print(f"\\n{len(event.answer.passages)} passage(s)")
            >>> asyncio.run(main())
            Answer ...: a deterministic fake reply.
            1 passage(s)
        """
        return self._events(
            app,
            question,
            documents,
            scheme=scheme,
            config_changes=config_changes,
            collection=collection,
            query_id=query_id,
            deadline_s=deadline_s,
            priority=priority,
            is_text_streamed=True,
        )

    def _events(
        self,
        app: App | str,
        question: str,
        documents: Sequence[Document | str],
        *,
        scheme: str,
        config_changes: Mapping[str, Any] | None,
        collection: Collection | None,
        query_id: str | None,
        deadline_s: float | None,
        priority: int,
        is_text_streamed: bool,
    ) -> AsyncGenerator[StreamEvent, None]:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r} (known: {', '.join(SCHEMES)})")
        if deadline_s is not None and scheme != "primflow":
            raise ValueError(f"the {scheme} scheme takes no deadline")
        if priority != 0 and scheme != "primflow":
            raise ValueError(f"the {scheme} scheme takes no priority")
        resolved, template = self._app(app)
        chosen_id = query_id or self.stack.new_query_id(resolved.name)

        async def run(sink: EventSink) -> Answer:
            with log_context(query_id=chosen_id):
                answer = await self._answer(
                    resolved,
                    template,
                    question,
                    documents,
                    sink,
                    scheme=scheme,
                    config_changes=config_changes,
                    collection=collection,
                    query_id=chosen_id,
                    deadline_s=deadline_s,
                    priority=priority,
                    is_text_streamed=is_text_streamed,
                )
                _log.info(
                    "%s (%s) answered in %.3f s; lowered in %.1f ms, optimized in %.1f ms%s",
                    resolved.name,
                    scheme,
                    answer.latency_s,
                    answer.lower_s * 1e3,
                    answer.optimize_s * 1e3,
                    " (cached graph)" if answer.is_cache_hit else "",
                )
                return answer

        return stream_events(run)

    async def _answer(
        self,
        app: App,
        template: Template,
        question: str,
        documents: Sequence[Document | str],
        sink: EventSink,
        *,
        scheme: str,
        config_changes: Mapping[str, Any] | None,
        collection: Collection | None,
        query_id: str,
        deadline_s: float | None,
        priority: int,
        is_text_streamed: bool,
    ) -> Answer:
        """Build the query (over ``collection`` if given) and run it on ``scheme``."""
        query = app.query(question, documents, **(config_changes or {}))
        template_key = app.name
        if collection is not None:
            template, query = self._collection_query(app, query, collection)
            template_key = template.name
        return await self._runner.answer(
            app.name,
            template,
            query,
            sink,
            scheme=scheme,
            template_key=template_key,
            query_id=query_id,
            deadline_s=deadline_s,
            priority=priority,
            is_text_streamed=is_text_streamed,
        )

    def forget_prefixes(self, query_id: str) -> None:
        """Drop the cached prompt prefixes a finished query left in the LLM engines (an
        engine's ``abort`` drops them), so running the same question again, with another
        scheme, computes its prompts anew instead of reusing this run's."""
        for engine in self.stack.engines.values():
            if engine.kind is EngineKind.LLM:
                engine.abort(query_id)

    def _collection_query(
        self, app: App, query: Query, collection: Collection
    ) -> tuple[Template, Query]:
        """The app's template without its indexing, and ``query`` reading ``collection``."""
        if query.documents:
            raise ValueError("pass documents or a collection, not both")
        if app.name not in self._indexed:
            self._indexed[app.name] = without_indexing(self._app(app)[1])
        indexed = self._indexed[app.name]
        for engine in indexed.embed_engines:
            collection.check_embedder(self.stack.engines[engine])
        [search_engine] = indexed.search_engines
        handle = collection.handle(self.stack.engines[search_engine])
        inputs = {**query.inputs, indexed.index_channel: handle}
        return indexed.template, dataclasses.replace(query, inputs=inputs)

    def _app(self, app: App | str) -> tuple[App, Template]:
        """The app and its template, built once per session. Graphs are cached by app
        name, so a name stands for one app: a second, different app under a name
        already asked is refused rather than served from the first one's cache."""
        resolved = get_app(app) if isinstance(app, str) else app
        if resolved.name not in self._apps:
            self._apps[resolved.name] = (resolved, resolved.template())
        known, template = self._apps[resolved.name]
        if resolved != known:
            raise ValueError(f"this session already runs a different app named {known.name!r}")
        return known, template
