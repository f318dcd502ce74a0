"""``run``: one question answered synchronously, for scripts and notebooks' plain cells.

It builds the engine stack the app needs, starts it, asks through a :class:`Session`,
closes everything and returns the :class:`Answer`. Invariants: it runs its own event
loop, so it refuses to run inside one that is already running (a notebook cell, an
async function) with an error that points to ``await session.ask(...)``; the engines
are closed before it returns or raises, whatever happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from primflow.api.documents import Document, load_documents
from primflow.apps import App
from primflow.collections import Collection, CollectionStore
from primflow.engines.base import EngineKind
from primflow.session.answer import Answer
from primflow.session.events import OnText
from primflow.session.factories import embedded_factory
from primflow.session.session import Session
from primflow.session.stack import EngineFactory, EngineStack

IN_LOOP_ERROR = (
    "primflow.run() runs its own event loop and blocks until the answer is ready, so it "
    "cannot be called while an event loop is running (in a notebook cell or an async "
    "function); there, start a session and `await session.ask(app, question, documents)` "
    "(or iterate `session.stream(...)`), see the Python API guide"
)


def run(
    app: App | str,
    question: str,
    documents: Sequence[Document | str] | Path = (),
    *,
    collection: Collection | str | None = None,
    factory: EngineFactory | None = None,
    custom_engines: Mapping[str, EngineKind] | None = None,
    scheme: str = "primflow",
    config_changes: Mapping[str, Any] | None = None,
    on_text: OnText | None = None,
    deadline_s: float | None = None,
) -> Answer:
    """Answer one question with ``app`` and return the :class:`~primflow.Answer`.

    ``documents`` are texts or :class:`~primflow.Document` s, or a ``Path`` to a file or
    folder to load (``load_documents``). ``collection`` is a persistent collection, or
    the name of one in the default collection folder. ``factory`` builds the engines
    (default: the real embedded ones, loaded for this call and closed after it);
    ``on_text`` receives the answer's text as it is decoded. For many questions, or
    inside a running event loop, use a :class:`~primflow.Session`.

    Examples:
        >>> from primflow import run
        >>> from primflow.session import fake_factory
        >>> answer = run("naive_rag", "How much leave?", ["Employees get 25 days of leave."],
        ...              factory=fake_factory(latency_scale=0.0))
        >>> answer.text, answer.passages[0].chunk.source
        ('Answer ...: a deterministic fake reply.', 'doc-0')

        Inside a running event loop it refuses, and says what to do instead:

        >>> import asyncio
        >>> async def inside_a_loop():
        ...     return run("naive_rag", "How much leave?", ["Employees get 25 days."])
        >>> asyncio.run(inside_a_loop())
        Traceback (most recent call last):
        RuntimeError: primflow.run() runs its own event loop ... `await session.ask(...` ...
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop running: this call runs its own
    else:
        raise RuntimeError(IN_LOOP_ERROR)
    if isinstance(documents, str):
        raise TypeError(
            "documents: pass a list of texts or Documents, or a pathlib.Path to load "
            f"a file or folder, not a str ({documents[:40]!r})"
        )
    loaded = load_documents(documents) if isinstance(documents, Path) else list(documents)
    opened = CollectionStore().open(collection) if isinstance(collection, str) else collection
    stack = EngineStack.for_apps(
        [app], factory or embedded_factory(), custom_engines=custom_engines
    )

    async def ask() -> Answer:
        async with stack, Session(stack) as session:
            return await session.ask(
                app,
                question,
                loaded,
                scheme=scheme,
                config_changes=config_changes,
                collection=opened,
                on_text=on_text,
                deadline_s=deadline_s,
            )

    return asyncio.run(ask())
