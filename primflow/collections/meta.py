"""What a collection is on disk, apart from its vectors: names, errors, ``meta.json``.

A collection lives in ``<root>/<name>/``. ``meta.json`` says what it holds and how it
was made (format version, backend, the embedding model and its dimension, the chunking,
the documents' sources, the chunk count); a FAISS collection keeps ``index.faiss`` and
``chunks.jsonl`` (one chunk per line, row ``i`` of the index is line ``i``) next to it,
a pgvector one keeps its rows in a PostgreSQL table. Invariants:

- Names match ``NAME_PATTERN``: lowercase identifiers, so a name is a safe folder name
  on every file system and a safe SQL table name (PostgreSQL folds case).
- ``meta.json`` is written last and atomically (write, then rename), so a collection
  whose meta file exists is complete; a format version this code does not know is
  refused, never guessed at.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
META_FILE = "meta.json"


class CollectionError(ValueError):
    """A collection cannot be made, opened, changed or queried; the message says why."""


class UnknownCollection(CollectionError):
    pass


class CollectionExists(CollectionError):
    pass


class Backend(StrEnum):
    FAISS = "faiss"  # index.faiss + chunks.jsonl in the collection's folder
    PGVECTOR = "pgvector"  # a table in PostgreSQL


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise CollectionError(
            f"collection name {name!r} is not valid: use lowercase letters, digits and _, "
            "starting with a letter, at most 40 characters (e.g. 'handbook_2024')"
        )
    return name


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class CollectionMeta:
    """What ``meta.json`` holds. ``dim`` is None until the first documents are added."""

    name: str
    backend: Backend
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    dim: int | None = None
    num_chunks: int = 0
    sources: tuple[str, ...] = ()
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    format_version: int = FORMAT_VERSION

    @property
    def num_documents(self) -> int:
        return len(self.sources)

    def grown(self, dim: int, sources: tuple[str, ...], num_new_chunks: int) -> CollectionMeta:
        return replace(
            self,
            dim=dim,
            sources=self.sources + sources,
            num_chunks=self.num_chunks + num_new_chunks,
            updated_at=now_iso(),
        )

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["backend"] = str(self.backend)
        record["sources"] = list(self.sources)
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any], where: str) -> CollectionMeta:
        version = record.get("format_version")
        if version != FORMAT_VERSION:
            raise CollectionError(
                f"{where}: collection format version {version!r} is not supported "
                f"(this primflow reads version {FORMAT_VERSION})"
            )
        try:
            return cls(
                name=check_name(record["name"]),
                backend=Backend(record["backend"]),
                embedding_model=str(record["embedding_model"]),
                chunk_size=int(record["chunk_size"]),
                chunk_overlap=int(record["chunk_overlap"]),
                dim=None if record.get("dim") is None else int(record["dim"]),
                num_chunks=int(record["num_chunks"]),
                sources=tuple(str(s) for s in record["sources"]),
                created_at=str(record["created_at"]),
                updated_at=str(record["updated_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CollectionError(f"{where}: malformed collection metadata ({exc})") from None


def read_meta(folder: Path) -> CollectionMeta:
    path = folder / META_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnknownCollection(f"no collection at {str(folder)!r}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CollectionError(f"{str(path)!r} is not readable collection metadata: {exc}") from None
    if not isinstance(record, dict):
        raise CollectionError(f"{str(path)!r} is not a JSON object")
    return CollectionMeta.from_json(record, str(path))


def write_meta(folder: Path, meta: CollectionMeta) -> None:
    write_atomic(folder / META_FILE, json.dumps(meta.to_json(), indent=2) + "\n")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new, never half."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
