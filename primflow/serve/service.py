"""The service behind the routes: one engine stack and one session for every app.

``Service`` starts the engines once and runs every application's queries on them
(co-location). Each query is admitted (``admission.py``), then runs as one task;
the task's end, whatever it is, releases the admission and drops the query's
listeners, so nothing of a query outlives it. Cancelling the task (a client gone, or
the drain timing out) cancels the query in the runtime, which aborts its work on
every engine. ``drain`` refuses new queries, waits for running ones up to a timeout,
then cancels what is left. Persistent collections (``collections.py``) are indexed on
the stack's embedder; a query that names one reads it instead of indexing documents.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from primflow.api.documents import Document
from primflow.api.indexed import without_indexing
from primflow.api.template import TemplateError
from primflow.apps import UnknownAppError
from primflow.collections import Backend, Collection, CollectionError, CollectionStore
from primflow.runtime import QueryCancelled, QueryFailed, QueryTimeout
from primflow.serve.admission import Admission, Ticket
from primflow.serve.apps import resolve_apps
from primflow.serve.collections import ServedCollections
from primflow.serve.events import NodeListener, ServerHook
from primflow.serve.metrics import ServerMetrics
from primflow.serve.settings import ServeSettings
from primflow.serve.tracing import ServeTracing
from primflow.session.engine_config import stack_factory
from primflow.session.factories import EmbeddedSettings, embedded_factory, pgvector_factory
from primflow.session.session import Answer, OnText, Session
from primflow.session.stack import EngineFactory, EngineStack, read_profiles


class InvalidQuery(ValueError):
    """A well-formed request this app cannot answer; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class RunningQuery:
    query_id: str
    app: str
    task: asyncio.Task[Answer]
    collection: str | None = None


class Service:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.hook = ServerHook(self.metrics)
        self.admission = Admission(settings.max_queued_queries)
        self.apps = resolve_apps(settings.apps, settings.imports)
        self._needs_documents = {
            name: any(c.kind == "chunk" for c in app.template().components)
            for name, app in self.apps.items()
        }
        backend = Backend.PGVECTOR if settings.pgvector else Backend.FAISS
        self.collections = ServedCollections(CollectionStore(settings.collections_dir), backend)
        self._reads_collections: dict[str, str | None] = {}  # app -> why not (None: can)
        self.stack: EngineStack | None = None
        self.session: Session | None = None
        self.running: dict[str, RunningQuery] = {}
        self.started_s = time.time()
        self.tracing = ServeTracing()

    # -- lifecycle ----------------------------------------------------------------
    def _factory(self) -> EngineFactory:
        settings = self.settings
        if settings.engine_backend == "fake":
            from primflow.serve.fake_control import controlled_fake_factory

            base = controlled_fake_factory(settings.fake_latency_scale)
        else:
            base = embedded_factory(self._embedded_settings())
        return stack_factory(
            settings.engines_file,
            pgvector_factory(settings.pgvector, base),
            self._embedded_settings(),
        )

    def _embedded_settings(self) -> EmbeddedSettings:
        """The embedded engines' models: the operator's files, else the shipped ones."""
        llm_model, embed_model = self.settings.llm_model, self.settings.embed_model
        return EmbeddedSettings(
            llm_model_path=str(llm_model) if llm_model is not None else None,
            embed_model_dir=embed_model,
        )

    async def start(self) -> None:
        """Start the engines (idempotent); raises what a failing engine raises."""
        if self.stack is not None:
            return
        settings = self.settings
        stack = EngineStack.for_apps(
            list(self.apps.values()),
            self._factory(),
            placement=settings.placement,
            profiles=read_profiles(settings.profiles),
            num_cores=settings.num_cores,
        )
        try:
            await stack.start()
        except BaseException:
            await stack.close()
            raise
        self.stack = stack
        self.collections.bind(stack)
        self.session = Session(stack, hooks=[self.hook, *self.tracing.hooks(stack)])
        self.tracing.bind(self.session)
        await self.session.start()
        self.metrics.watch(stack, self.session.runtime, lambda: self.admission.num_active)

    async def close(self) -> None:
        for query in list(self.running.values()):
            query.task.cancel()
        if self.running:
            await asyncio.wait([q.task for q in self.running.values()], timeout=5)
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self.stack is not None:
            await self.stack.close()
            self.stack = None

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new queries; True if every running one finished within ``timeout_s``
        (the rest are cancelled)."""
        self.admission.start_draining()
        if await self.admission.wait_idle(timeout_s):
            return True
        for query in list(self.running.values()):
            query.task.cancel()
        await self.admission.wait_idle(5.0)
        return False

    # -- queries ------------------------------------------------------------------
    def start_query(
        self,
        app: str,
        question: str,
        documents: Sequence[Document],
        config_changes: dict[str, Any],
        *,
        deadline_s: float | None = None,
        on_text: OnText | None = None,
        on_node: NodeListener | None = None,
        collection: str | None = None,
        priority: int = 0,
    ) -> RunningQuery:
        """Admit and start one query; raises UnknownAppError, InvalidQuery,
        CollectionError or Refused at once."""
        if app not in self.apps:
            served = ", ".join(self.apps)
            raise UnknownAppError(f"unknown app {app[:64]!r}; this server serves: {served}")
        assert self.session is not None and self.stack is not None
        read = self._collection_for(app, collection, documents) if collection else None
        if read is None and not documents and self.needs_documents(app):
            raise InvalidQuery(
                "body.documents",
                f"documents: app {app!r} answers from documents; send some, or name a collection",
            )
        query_id = self.stack.new_query_id(app)
        ticket = self.admission.admit(query_id)
        changes = {**self.settings.config_changes, **config_changes}
        if on_node is not None:
            self.hook.listen(query_id, on_node)
        coroutine = self.session.ask(
            self.apps[app],
            question,
            documents,
            on_text=self._counting(app, on_text),
            config_changes=changes,
            query_id=query_id,
            deadline_s=deadline_s,
            collection=read,
            priority=priority,
        )
        task = asyncio.get_running_loop().create_task(coroutine)
        query = RunningQuery(query_id, app, task, read.name if read else None)
        if read is not None:
            self.collections.acquire(read.name)
        self.running[query_id] = query
        task.add_done_callback(lambda done: self._on_end(query, ticket, done))
        return query

    def needs_documents(self, app: str) -> bool:
        return self._needs_documents[app]

    def _collection_for(self, app: str, name: str, documents: Sequence[Document]) -> Collection:
        if documents:
            raise InvalidQuery("body.collection", "send documents or a collection, not both")
        if app not in self._reads_collections:
            try:
                without_indexing(self.apps[app].template())
                self._reads_collections[app] = None
            except TemplateError as exc:
                self._reads_collections[app] = str(exc)
        why_not = self._reads_collections[app]
        if why_not is not None:
            raise InvalidQuery(
                "body.collection", f"app {app!r} cannot read a collection: {why_not}"
            )
        try:
            collection = self.collections.open(name)
        except CollectionError as exc:
            if type(exc) is CollectionError:  # the name itself is bad
                raise InvalidQuery("body.collection", str(exc)) from None
            raise
        if collection.meta.num_chunks == 0:
            raise InvalidQuery("body.collection", f"collection {name!r} is empty; upload documents")
        return collection

    def _counting(self, app: str, on_text: OnText | None) -> OnText:
        pieces = self.metrics.text_pieces.labels(app)

        def count(text: str) -> None:
            pieces.inc()
            if on_text is not None:
                on_text(text)

        return count

    def _on_end(self, query: RunningQuery, ticket: Ticket, task: asyncio.Task[Answer]) -> None:
        self.running.pop(query.query_id, None)
        self.hook.forget(query.query_id)
        if query.collection is not None:
            self.collections.release(query.collection)
        ticket.release()
        self.metrics.queries.labels(query.app, _status(task)).inc()
        if not task.cancelled() and task.exception() is None:
            self.metrics.latency.labels(query.app).observe(task.result().latency_s)
            self.tracing.record(task.result())

    def count_refused(self, app: str, status: str) -> None:
        self.metrics.queries.labels(app, status).inc()

    # -- inspection ---------------------------------------------------------------
    def engine_health(self) -> dict[str, dict[str, Any]]:
        assert self.stack is not None
        report: dict[str, dict[str, Any]] = {}
        for name, engine in self.stack.engines.items():
            health = engine.health()
            report[name] = {
                "kind": str(engine.kind),
                "is_healthy": health.is_healthy,
                "detail": health.detail,
                "num_queued": health.num_queued,
                "num_running": health.num_running,
                "load": round(health.load, 4),
            }
        return report


def _status(task: asyncio.Task[Answer]) -> str:
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    if error is None:
        return "ok"
    for kind, status in (
        (QueryTimeout, "timeout"),
        (QueryFailed, "failed"),
        (QueryCancelled, "cancelled"),
        (ValueError, "invalid"),
    ):
        if isinstance(error, kind):
            return status
    return "error"


def documents_of(items: Sequence[Any]) -> list[Document]:
    """Inline documents (``InlineDocument``) as session documents, sources filled in."""
    return [Document(d.text, d.source or f"doc-{i}") for i, d in enumerate(items)]
