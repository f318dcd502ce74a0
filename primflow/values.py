"""The values that flow along edges at run time, one type per ``PortType``.

Chunk and Hit are immutable so that one value can feed several consumers safely.

Sealed chunk lists: a vector engine refuses an ingest unless every chunk is a
:class:`Chunk`, a pass over the list (21 us at 650 chunks, 41-56 us at 2,000: more than
the rest of the engine's ingest).
The chunker (``chunk_documents``) and the collections make their lists as
:class:`SealedChunks`, a ``list`` known to hold only chunks, which the engines accept
with an O(1) test (:func:`is_sealed_chunks`), as they accept the embedder's sealed
vectors (``engines/unit_vectors.py``). Invariants:

- A :class:`SealedChunks` is sealed only when :func:`seal_chunks` checked it (or the code
  that made its chunks said so, :func:`sealed_chunks_of`) and nothing was added or
  replaced since: its ``append``, ``extend``, ``insert``, ``+=``, item assignment and
  ``__init__`` break the seal first, so a changed list is checked in full again. Taking
  chunks out or reordering keeps it sealed (what is left are still chunks), and a slice
  of a sealed list is sealed (the pipelined stages of one ingest each take one).
- As with a sealed matrix, whose read-only flag can be turned off and on again by hand,
  the seal guards the list's own interface: calling ``list``'s methods on it by name
  (``list.append(chunks, x)``) goes around it. A pickled list is checked again when it
  is loaded (in a Ray actor, say).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self, SupportsIndex, TypeGuard, overload


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


_new_hit = object.__new__
_set_chunk = vars(Hit)["chunk"].__set__  # the slots' own descriptors
_set_score = vars(Hit)["score"].__set__


def hits_of(chunks: list[Chunk], rows: list[int], scores: list[float]) -> list[Hit]:
    """``Hit(chunks[r], s)`` for each row ``r >= 0`` (faiss marks missing ones -1) and
    its score: what a vector search returns for one query row. Each hit is made without
    the frozen dataclass's ``__init__`` (its per-field ``object.__setattr__`` is a third
    of a hit's cost), into the same slots, so it is an ordinary :class:`Hit`."""
    hits = []
    for row, score in zip(rows, scores, strict=True):
        if row >= 0:
            hit = _new_hit(Hit)
            _set_chunk(hit, chunks[row])
            _set_score(hit, score)
            hits.append(hit)
    return hits


@dataclass(frozen=True, slots=True)
class IndexHandle:
    """Names a vector collection on an index engine: ``engine/collection``."""

    engine: str
    collection: str
    num_items: int = 0


class SealedChunks(list[Chunk]):
    """A list of chunks, sealed while it holds nothing but :class:`Chunk` objects (see
    the module docstring). Build one with :func:`seal_chunks`; it is an ordinary list
    for every reader.

    Examples:
        >>> from primflow.values import Chunk, is_sealed_chunks, seal_chunks
        >>> chunks = seal_chunks([Chunk("a", "doc", 0), Chunk("b", "doc", 1)])
        >>> is_sealed_chunks(chunks), is_sealed_chunks(chunks[1:]), chunks == list(chunks)
        (True, True, True)
        >>> chunks.append("not a chunk")
        >>> is_sealed_chunks(chunks)
        False
    """

    __slots__ = ("_is_intact",)

    def __init__(self, chunks: Iterable[Chunk] = ()) -> None:
        self._is_intact = False
        super().__init__(chunks)

    def __reduce__(self) -> tuple[Any, ...]:
        return (seal_chunks, (list(self),))  # checked again where it is loaded

    @overload
    def __getitem__(self, index: SupportsIndex) -> Chunk: ...

    @overload
    def __getitem__(self, index: slice) -> list[Chunk]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Chunk | list[Chunk]:
        if type(index) is not slice:
            return super().__getitem__(index)
        part = SealedChunks(super().__getitem__(index))
        part._is_intact = self._is_intact
        return part

    @overload
    def __setitem__(self, index: SupportsIndex, chunk: Chunk) -> None: ...

    @overload
    def __setitem__(self, index: slice, chunks: Iterable[Chunk]) -> None: ...

    def __setitem__(self, index: Any, value: Any) -> None:
        self._is_intact = False
        super().__setitem__(index, value)

    def __iadd__(self, chunks: Iterable[Chunk]) -> Self:  # type: ignore[override,misc]
        self._is_intact = False
        super().__iadd__(chunks)
        return self

    def append(self, chunk: Chunk) -> None:
        self._is_intact = False
        super().append(chunk)

    def extend(self, chunks: Iterable[Chunk]) -> None:
        self._is_intact = False
        super().extend(chunks)

    def insert(self, index: SupportsIndex, chunk: Chunk) -> None:
        self._is_intact = False
        super().insert(index, chunk)


def is_sealed_chunks(value: Any) -> TypeGuard[SealedChunks]:
    """True for a :class:`SealedChunks` that is still sealed (module docstring)."""
    return type(value) is SealedChunks and value._is_intact


def seal_chunks(chunks: Iterable[Any]) -> SealedChunks:
    """``chunks`` as a sealed list (a new one), after checking every item is a
    :class:`Chunk`; raises TypeError naming the first item that is not."""
    sealed = SealedChunks(chunks)
    for i, chunk in enumerate(sealed):
        if not isinstance(chunk, Chunk):
            raise TypeError(f"chunks[{i}] must be a Chunk, got {type(chunk).__name__}")
    sealed._is_intact = True
    return sealed


def sealed_chunks_of(chunks: list[Chunk]) -> SealedChunks:
    """Seal a list whose items the caller has just made as :class:`Chunk` objects (the
    chunker, a collection's file reader), without checking them again."""
    sealed = SealedChunks(chunks)
    sealed._is_intact = True
    return sealed
