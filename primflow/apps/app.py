"""An application: a template factory, its default per-query config and a sample query."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from primflow.api.config import Query, QueryConfig
from primflow.api.documents import Document
from primflow.api.template import Template


@dataclass(frozen=True)
class App:
    name: str
    description: str
    build: Callable[[], Template]
    default_config: QueryConfig
    sample_question: str
    # The sample query's documents and config changes (e.g. a smaller chunk size so the
    # graph shows stage decomposition); called lazily since they read files.
    sample_documents: Callable[[], list[Document]] = list
    sample_config_changes: dict[str, Any] = field(default_factory=dict)
    # The question set the benchmark asks (a JSONL file under samples/, one record per
    # line: question, source, answer_contains).
    questions_file: str = "questions.jsonl"

    def template(self) -> Template:
        return self.build()

    def query(
        self, question: str, documents: Sequence[Document | str] = (), **config_changes: Any
    ) -> Query:
        """A query with this app's defaults, overridden by ``config_changes``."""
        config = self.default_config.with_changes(**config_changes)
        return Query(question, tuple(documents), config)  # type: ignore[arg-type]

    def sample_query(self) -> Query:
        return self.query(
            self.sample_question, self.sample_documents(), **self.sample_config_changes
        )
