"""Web search: a local BM25 stand-in behind the ``SearchBackend`` interface."""

from primflow.engines.websearch.backend import (
    Bm25Backend,
    SearchBackend,
    SearchRecord,
    load_jsonl,
)
from primflow.engines.websearch.engine import WebSearchEngine

__all__ = ["Bm25Backend", "SearchBackend", "SearchRecord", "WebSearchEngine", "load_jsonl"]
