"""The server's persistent collections: upload, list, delete, and what a query reads.

``ServedCollections`` fronts the one :class:`~primflow.collections.CollectionStore` the
server was started with (FAISS files under ``--collections-dir``; pgvector rows on the
``--pgvector`` server when configured): it is the same store `primflow index` and
`primflow collections` use, not a second one. Invariants:

- Nothing from a request names a path on the server's disk: a collection name passes
  :func:`~primflow.collections.check_name` (a lowercase identifier) before it reaches
  the store; uploaded files are parsed from their bytes in memory, and their file names
  are only labels (the documents' sources).
- An upload is parsed whole before anything is stored, and a collection that an add
  created is deleted again if the add fails, so a failed upload leaves nothing
  half-indexed (an add to an existing collection writes its files only after the
  embedding succeeded, ``meta.json`` last).
- One writer per collection at a time (a lock per name); a collection that running
  queries read cannot be deleted (:class:`CollectionBusy`).
- Opened collections are kept, so queries search the in-memory index the last add
  made; a deleted collection is dropped from the vector engine too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from primflow.api.documents import Document, parse_document
from primflow.collections import (
    AddReport,
    Backend,
    Collection,
    CollectionError,
    CollectionMeta,
    CollectionStore,
    UnknownCollection,
    check_name,
    embedding_model_id,
)
from primflow.engines.base import Engine
from primflow.session.stack import EngineStack

EMBEDDER = "embedder"  # the engine every built-in app embeds with
VECTOR_INDEX = "vector_index"
MAX_SOURCE_CHARS = 256


class CollectionBusy(CollectionError):
    """The collection is in use (being written, or read by running queries)."""


class SourcesExist(CollectionError):
    """The collection already holds documents of these sources."""


class BadUpload(CollectionError):
    """An upload that cannot be indexed; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class UploadedFile:
    name: str  # as the client sent it: a label, never opened
    data: bytes


def check_file_name(name: str | None) -> str:
    """An upload's file name, refused if it is empty or looks like a path out of a
    folder (absolute, ``..``, backslashes, control characters)."""
    if not name:
        raise BadUpload("files", "every uploaded file needs a file name (it picks the loader)")
    if len(name) > MAX_SOURCE_CHARS:
        raise BadUpload("files", f"file name {name[:40]!r}... is over {MAX_SOURCE_CHARS} chars")
    path = PurePosixPath(name)
    is_bad = (
        path.is_absolute()
        or ".." in path.parts
        or "\\" in name
        or any(ord(c) < 32 for c in name)
        or ":" in name
    )
    if is_bad:
        raise BadUpload(
            "files",
            f"file name {name!r} looks like a path: send a plain relative name "
            "(e.g. 'leave.md' or 'notes/leave.md'); nothing is read from the server's disk",
        )
    return name


def parse_uploads(files: Sequence[UploadedFile]) -> list[Document]:
    """Every uploaded file's documents (raises DocumentError, UnsupportedFileType,
    BadUpload); file names must be distinct."""
    if not files:
        raise BadUpload("files", "no files: send one or more 'files' parts")
    seen: set[str] = set()
    documents: list[Document] = []
    for upload in files:
        name = check_file_name(upload.name)
        if name in seen:
            raise BadUpload("files", f"file {name!r} is uploaded twice")
        seen.add(name)
        documents.extend(parse_document(name, upload.data))
    return documents


class ServedCollections:
    def __init__(self, store: CollectionStore, default_backend: Backend) -> None:
        self.store = store
        self.default_backend = default_backend
        self.stack: EngineStack | None = None
        self._open: dict[str, Collection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._readers: Counter[str] = Counter()

    def bind(self, stack: EngineStack) -> None:
        """Use ``stack``'s embedder to index, and its pgvector index (if it has one) for
        pgvector collections."""
        self.stack = stack
        vector = stack.engines.get(VECTOR_INDEX)
        if vector is not None and self.store.pgvector is None:
            from primflow.engines.vector.pgvector_engine import PgVectorEngine

            inner = _unwrapped(vector)
            if isinstance(inner, PgVectorEngine):
                self.store.pgvector = inner

    # -- reading --------------------------------------------------------------------
    def list(self) -> list[CollectionMeta]:
        return self.store.list()

    def open(self, name: str) -> Collection:
        """The collection ``name`` (raises CollectionError: bad name, UnknownCollection)."""
        check_name(name)
        if not self.store.exists(name):  # the store's own message names its folder
            self._open.pop(name, None)
            known = ", ".join(self.store.names()) or "none yet"
            raise UnknownCollection(f"no collection {name!r} (collections: {known})")
        collection = self._open.get(name)
        if collection is None:
            collection = self._open[name] = self.store.open(name)
        return collection

    def acquire(self, name: str) -> None:
        """A query starts reading ``name``."""
        self._readers[name] += 1

    def release(self, name: str) -> None:
        self._readers[name] -= 1
        if self._readers[name] <= 0:
            del self._readers[name]

    # -- writing --------------------------------------------------------------------
    async def add(
        self,
        name: str,
        documents: Sequence[Document],
        *,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        backend: Backend | None = None,
    ) -> tuple[AddReport, Collection, bool]:
        """Index ``documents`` into ``name`` (created if new): (report, collection, is_new)."""
        check_name(name)
        embedder = self._engine(EMBEDDER)
        async with self._lock(name):
            is_new = not self.store.exists(name)
            if is_new:
                options = {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap}
                collection = self.store.create(
                    name,
                    embedding_model=embedding_model_id(embedder),
                    backend=backend or self.default_backend,
                    **{k: v for k, v in options.items() if v is not None},
                )
            else:
                collection = self.open(name)
                repeated = sorted({d.source for d in documents} & set(collection.meta.sources))
                if repeated:
                    raise SourcesExist(
                        f"collection {name!r} already holds {', '.join(repeated[:5])}; "
                        "delete the collection and upload again to replace documents"
                    )
            try:
                report = await collection.add(documents, embedder)
            except BaseException:
                if is_new:  # leave nothing half-made behind
                    await self.store.delete(name)
                raise
            self._open[name] = collection
            return report, collection, is_new

    async def delete(self, name: str) -> None:
        check_name(name)
        if self._readers.get(name):
            raise CollectionBusy(
                f"collection {name!r} is read by {self._readers[name]} running queries; "
                "delete it when they have ended"
            )
        async with self._lock(name):
            collection = self.open(name)
            await self.store.delete(name)
            self._open.pop(name, None)
            vector = self.stack.engines.get(VECTOR_INDEX) if self.stack is not None else None
            drop = getattr(_unwrapped(vector), "drop_shared", None) if vector else None
            if drop is not None and collection.meta.backend is Backend.FAISS:
                drop(collection.engine_collection)

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.setdefault(name, asyncio.Lock())
        if lock.locked():
            raise CollectionBusy(f"collection {name!r} is being written; retry when it is done")
        return lock

    def _engine(self, name: str) -> Engine:
        engine = self.stack.engines.get(name) if self.stack is not None else None
        if engine is None:
            raise CollectionBusy(
                f"this server runs no {name!r} engine (none of its apps uses one), so it "
                "cannot index collections; serve an app that searches documents"
            )
        return engine


def _unwrapped(engine: Engine) -> Engine:
    while isinstance(getattr(engine, "inner", None), Engine):
        engine = engine.inner  # type: ignore[attr-defined]
    return engine
