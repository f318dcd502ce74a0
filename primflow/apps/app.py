"""An application: a template factory, its default per-query config and a sample query.

The four built-in apps are :class:`App` values registered by name
(:func:`primflow.apps.get_app`); a user's own app is an :class:`App` too, passed to
:class:`~primflow.session.EngineStack` and :class:`~primflow.session.Session` as the
object itself instead of a name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from primflow.api.config import Query, QueryConfig
from primflow.api.documents import Document, as_documents
from primflow.api.template import Template


@dataclass(frozen=True)
class App:
    """A named workflow: ``build`` makes its template, ``default_config`` is the
    config each query starts from (a query's changes override it).

    ``name`` keys the session's caches and prefixes query ids, so two different apps
    run by one session need two names.

    Examples:
        >>> from primflow import App, Embed, QueryConfig, build_template
        >>> def build():
        ...     embed = Embed(items="question_list", vectors="vectors")
        ...     return build_template("embed_only", embed, outputs={"vectors": "vectors"})
        >>> app = App("embed_only", build, default_config=QueryConfig(top_k=2))
        >>> app.template().name
        'embed_only'
        >>> app.query("a question?", max_tokens=16).config.max_tokens
        16
        >>> app.query("a question?").config.top_k
        2
    """

    name: str
    build: Callable[[], Template]
    description: str = ""
    default_config: QueryConfig = field(default_factory=QueryConfig)
    sample_question: str = ""
    # The sample query's documents and config changes (e.g. a smaller chunk size so the
    # graph shows stage decomposition); called lazily since they read files.
    sample_documents: Callable[[], list[Document]] = list
    sample_config_changes: dict[str, Any] = field(default_factory=dict)
    # The question set the benchmark asks (a JSONL file under samples/, one record per
    # line: question, source, answer_contains).
    questions_file: str = "questions.jsonl"
    # For an app with a loop: the decisions its sample graph is grown with (goldens and
    # ``primflow graph``); a run takes the model's own.
    sample_decisions: tuple[str, ...] = ()

    def template(self) -> Template:
        return self.build()

    @property
    def has_loop(self) -> bool:
        """Whether the app's graph grows while a query runs (a ``Loop``)."""
        return any(getattr(c, "is_dynamic", False) for c in self.template().components)

    def query(
        self, question: str, documents: Sequence[Document | str] = (), **config_changes: Any
    ) -> Query:
        """A query with this app's defaults, overridden by ``config_changes``."""
        config = self.default_config.with_changes(**config_changes)
        return Query(question, as_documents(documents), config)

    def sample_query(self) -> Query:
        if not self.sample_question:
            raise ValueError(f"app {self.name!r} has no sample question")
        return self.query(
            self.sample_question, self.sample_documents(), **self.sample_config_changes
        )
