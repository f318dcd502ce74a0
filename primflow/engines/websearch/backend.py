"""Search backends for WEB_SEARCH. ``Bm25Backend`` is a local stand-in for a web search API:
BM25 (bm25s, numpy only, sub-millisecond per query on 10k docs) over a document collection.

A real search-API adapter implements the same ``SearchBackend.search``: a list of
queries in, one best-first list of hits per query out. Invariants of ``Bm25Backend``:
hits carry ``Chunk(text, source=url, chunk_id=<record index>)``; only documents sharing
at least one term with the query are returned; the index is immutable once built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from primflow.values import Chunk, Hit


@dataclass(frozen=True, slots=True)
class SearchRecord:
    title: str
    url: str
    text: str


class SearchBackend(Protocol):
    def search(self, queries: Sequence[str], top_k: int) -> list[list[Hit]]: ...


def load_jsonl(path: Path) -> list[SearchRecord]:
    """Records from a .jsonl file of {"title", "url", "text"} objects; errors name the line."""
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(record_from(json.loads(line)))
            except (ValueError, TypeError) as err:
                raise ValueError(f"{path}:{number}: {err}") from err
    return records


def record_from(data: Any) -> SearchRecord:
    if not isinstance(data, dict):
        raise TypeError(f"a record must be a JSON object, got {type(data).__name__}")
    missing = [key for key in ("url", "text") if not isinstance(data.get(key), str)]
    if missing:
        raise ValueError(f"record lacks text field(s) {missing}")
    return SearchRecord(str(data.get("title") or ""), data["url"], data["text"])


class Bm25Backend:
    def __init__(self, records: Sequence[SearchRecord]) -> None:
        import bm25s

        if not records:
            raise ValueError("Bm25Backend needs at least one document")
        self.records = list(records)
        self._chunks = [
            Chunk(f"{r.title}\n{r.text}" if r.title else r.text, r.url, i)
            for i, r in enumerate(self.records)
        ]
        self._bm25s = bm25s
        self._index = bm25s.BM25()
        corpus_tokens = bm25s.tokenize([c.text for c in self._chunks], show_progress=False)
        self._index.index(corpus_tokens, show_progress=False)

    @classmethod
    def from_jsonl(cls, path: Path) -> Bm25Backend:
        return cls(load_jsonl(path))

    def search(self, queries: Sequence[str], top_k: int) -> list[list[Hit]]:
        if not queries:
            return []
        tokens = self._bm25s.tokenize(list(queries), return_ids=False, show_progress=False)
        k = min(top_k, len(self._chunks))
        rows, scores = self._index.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return [
            [Hit(self._chunks[int(r)], float(s)) for r, s in zip(row, score, strict=True) if s > 0]
            for row, score in zip(rows, scores, strict=True)
        ]
