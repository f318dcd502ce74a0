"""Where collections live and how they are found: :class:`CollectionStore`.

A store is a root folder with one sub-folder per collection (see meta.py for what is
inside). The root is, in order: the ``root`` argument, ``$PRIMFLOW_COLLECTIONS_DIR``,
or ``primflow/collections`` under the user's data folder (``platformdirs``; e.g.
``~/.local/share`` on Linux), never inside the package. Invariants:

- A folder counts as a collection once its ``meta.json`` exists; other folders under
  the root are ignored by :meth:`list` and never deleted.
- One writer per collection at a time (adding documents from two processes at once is
  not supported); any number of readers.
- pgvector collections need the store to be given a started pgvector engine (its
  server holds their rows); FAISS ones need nothing but the folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from primflow.collections.collection import Collection
from primflow.collections.meta import (
    META_FILE,
    Backend,
    CollectionError,
    CollectionExists,
    CollectionMeta,
    UnknownCollection,
    check_name,
    read_meta,
    write_meta,
)

if TYPE_CHECKING:
    from primflow.engines.vector.pgvector_engine import PgVectorEngine

ROOT_ENV = "PRIMFLOW_COLLECTIONS_DIR"
DEFAULT_CHUNK_SIZE = 300  # QueryConfig's defaults: the chunking the apps use
DEFAULT_CHUNK_OVERLAP = 30


def default_root() -> Path:
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("primflow", appauthor=False)) / "collections"


class CollectionStore:
    """Create, open, list and delete the collections under one root folder."""

    def __init__(
        self, root: str | Path | None = None, *, pgvector: PgVectorEngine | None = None
    ) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.pgvector = pgvector

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.folder(name) / META_FILE).is_file()

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / META_FILE).is_file())

    def list(self) -> list[CollectionMeta]:
        """The metadata of every collection, by name."""
        return [read_meta(self.root / name) for name in self.names()]

    def create(
        self,
        name: str,
        *,
        embedding_model: str,
        backend: Backend | str = Backend.FAISS,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    ) -> Collection:
        """A new, empty collection. ``embedding_model`` is the model its vectors will
        come from (``embedding_model_id(stack.engines["embedder"])``)."""
        folder = self.folder(name)
        if self.exists(name):
            raise CollectionExists(f"collection {name!r} already exists in {str(self.root)!r}")
        if not 0 <= chunk_overlap < chunk_size:
            raise CollectionError(
                f"chunking needs 0 <= chunk_overlap < chunk_size, got {chunk_overlap}, {chunk_size}"
            )
        chosen = Backend(backend)
        if chosen is Backend.PGVECTOR and self.pgvector is None:
            raise CollectionError("a pgvector collection needs a store with a pgvector engine")
        meta = CollectionMeta(name, chosen, embedding_model, chunk_size, chunk_overlap)
        folder.mkdir(parents=True, exist_ok=True)
        write_meta(folder, meta)
        return Collection(folder, meta, self.pgvector)

    def open(self, name: str) -> Collection:
        folder = self.folder(name)
        if not self.exists(name):
            known = ", ".join(self.names()) or "none"
            raise UnknownCollection(
                f"no collection {name!r} in {str(self.root)!r} (collections: {known})"
            )
        return Collection(folder, read_meta(folder), self.pgvector)

    async def delete(self, name: str) -> None:
        """Remove the collection: its folder, and its table for a pgvector one."""
        collection = self.open(name)
        if collection.meta.backend is Backend.PGVECTOR:
            if self.pgvector is None:
                raise CollectionError(
                    f"collection {name!r} is stored in PostgreSQL: open the store with a "
                    "pgvector engine to delete it"
                )
            await self.pgvector.remove_shared(collection.engine_collection)
        shutil.rmtree(collection.folder)
