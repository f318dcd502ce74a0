"""The values that flow along edges at run time, one type per ``PortType``.

Chunk and Hit are immutable so that one value can feed several consumers safely.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document. ``chunk_id`` is unique within a query's corpus."""

    text: str
    source: str
    chunk_id: int


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage with its relevance score (higher is better)."""

    chunk: Chunk
    score: float


@dataclass(frozen=True, slots=True)
class IndexHandle:
    """Names a vector collection on an index engine: ``engine/collection``."""

    engine: str
    collection: str
    num_items: int = 0
