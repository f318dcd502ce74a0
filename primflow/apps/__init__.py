"""The paper's applications as templates, by name: :func:`get_app`."""

from __future__ import annotations

from primflow.apps import (
    advanced_rag,
    contextual_retrieval,
    corrective_rag,
    multi_hop_rag,
    naive_rag,
    search_augmented,
    tool_agent,
)
from primflow.apps.app import App

APPS: dict[str, App] = {
    app.name: app
    for app in (
        naive_rag.APP,
        advanced_rag.APP,
        search_augmented.APP,
        contextual_retrieval.APP,
        multi_hop_rag.APP,
        corrective_rag.APP,
        tool_agent.APP,
    )
}


class UnknownAppError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_app(name: str) -> App:
    """The built-in application called ``name``.

    Examples:
        >>> from primflow import get_app
        >>> app = get_app("naive_rag")
        >>> [c.name for c in app.template().components]
        ['chunk', 'embed_docs', 'ingest', 'embed_question', 'search', 'synthesize']
        >>> get_app("chatbot")
        Traceback (most recent call last):
        ...
        primflow.apps.UnknownAppError: unknown app 'chatbot'; known apps: naive_rag, ...
    """
    try:
        return APPS[name]
    except KeyError:
        known = ", ".join(APPS)
        raise UnknownAppError(f"unknown app {name!r}; known apps: {known}") from None


__all__ = ["APPS", "App", "UnknownAppError", "get_app"]
