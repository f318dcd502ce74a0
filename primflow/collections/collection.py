"""One persistent collection: chunked, embedded and indexed once, then searched by any
number of queries in this process or later ones.

Owns adding documents (chunk with the app's chunker, embed through the caller's
embedder engine, store) and handing the collection to a vector engine for search
(:meth:`Collection.handle`). Invariants:

- Chunk ids run 0..n-1 over the whole collection, in the order documents were added;
  a source (file name, ``file.jsonl#line``) is added at most once.
- Every vector was made by the model named in ``meta.embedding_model``; adding or
  querying with an embedder that runs another model is refused.
- FAISS: the in-memory index is copied before it changes (``add``), so an engine that
  serves the previous version keeps searching it undisturbed; files are written before
  ``meta.json``, which is replaced last. A ``Collection`` object sees what was on disk
  when it was opened plus its own adds: open it again to see another process's adds.
  An engine keeps serving its copy until ``drop_shared(collection.engine_collection)``.
- pgvector: the rows live in the shared table of ``engine_collection`` on the
  PostgreSQL server of the engine given to the store; they survive restarts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from primflow.api.documents import Document, as_documents, chunk_documents
from primflow.collections.chunk_file import read_chunks, write_chunks
from primflow.collections.embedding import embed_chunks, embedding_model_id
from primflow.collections.meta import Backend, CollectionError, CollectionMeta, write_meta
from primflow.engines.base import Engine
from primflow.values import Chunk, IndexHandle, SealedChunks, sealed_chunks_of

if TYPE_CHECKING:
    from primflow.engines.vector.faiss_collection import FaissCollection
    from primflow.engines.vector.pgvector_engine import PgVectorEngine

INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"


@dataclass(frozen=True)
class AddReport:
    """What one :meth:`Collection.add` stored."""

    num_documents: int
    num_chunks: int
    total_num_chunks: int


class Collection:
    """A collection opened from (or created in) a :class:`CollectionStore` folder."""

    def __init__(
        self, folder: Path, meta: CollectionMeta, pgvector: PgVectorEngine | None = None
    ) -> None:
        self.folder = folder
        self.meta = meta
        self._pgvector = pgvector
        self._faiss: FaissCollection | None = None

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def engine_collection(self) -> str:
        """The shared collection name on a vector engine (``c_`` keeps it apart from the
        engines' other shared collections)."""
        return f"c_{self.name}"

    def __repr__(self) -> str:
        return (
            f"Collection({self.name!r}, {self.meta.backend}, {self.meta.num_documents} documents,"
            f" {self.meta.num_chunks} chunks)"
        )

    # --- adding ---

    async def add(self, documents: Sequence[Document | str], embedder: Engine) -> AddReport:
        """Chunk, embed (on ``embedder``, a started embedder engine) and store
        ``documents``; plain strings get sources ``doc-<n>``."""
        docs = [d for d in as_documents(list(documents)) if d.text.strip()]
        if not docs:
            raise CollectionError(f"collection {self.name!r}: no documents with text to add")
        self.check_embedder(embedder)
        self._check_new_sources(docs)
        chunks = self._chunk(docs)
        vectors = await embed_chunks(embedder, chunks, self.name)
        dim = int(vectors.shape[1])
        if self.meta.dim is not None and dim != self.meta.dim:
            raise CollectionError(
                f"collection {self.name!r} has dimension {self.meta.dim}, the embedder gave {dim}"
            )
        if self.meta.backend is Backend.PGVECTOR:
            await self._pg().add_shared(self.engine_collection, chunks, vectors)
        else:
            self._add_to_faiss(chunks, vectors)
        sources = tuple(dict.fromkeys(d.source for d in docs))
        self.meta = self.meta.grown(dim, sources, len(chunks))
        write_meta(self.folder, self.meta)
        return AddReport(len(docs), len(chunks), self.meta.num_chunks)

    def _check_new_sources(self, docs: list[Document]) -> None:
        known = set(self.meta.sources)
        repeated = sorted({d.source for d in docs if d.source in known})
        if repeated:
            shown = ", ".join(repeated[:5]) + (" ..." if len(repeated) > 5 else "")
            raise CollectionError(
                f"collection {self.name!r} already holds {shown}; delete the collection and "
                "index again to replace documents"
            )

    def _chunk(self, docs: list[Document]) -> SealedChunks:
        pieces = chunk_documents(docs, self.meta.chunk_size, self.meta.chunk_overlap)
        offset = self.meta.num_chunks
        return sealed_chunks_of([Chunk(c.text, c.source, c.chunk_id + offset) for c in pieces])

    def _add_to_faiss(self, chunks: list[Chunk], vectors: object) -> None:
        from primflow.engines.vector.common import unit_rows
        from primflow.engines.vector.faiss_collection import FaissCollection

        rows = unit_rows(vectors, "collection", self.name)
        current = self._load_faiss()
        grown = current.copy() if current is not None else FaissCollection(rows.shape[1])
        grown.add(chunks, rows)
        write_chunks(self.folder / CHUNKS_FILE, grown.chunks)
        grown.write(self.folder / INDEX_FILE)
        self._faiss = grown

    # --- querying ---

    def check_embedder(self, embedder: Engine) -> None:
        model = embedding_model_id(embedder)
        if model != self.meta.embedding_model:
            raise CollectionError(
                f"collection {self.name!r} was embedded with {self.meta.embedding_model!r}; "
                f"engine {embedder.name!r} runs {model!r}. Query it with that model, or "
                "index the documents again into a new collection"
            )

    def handle(self, vector_engine: Engine) -> IndexHandle:
        """Make ``vector_engine`` serve this collection and return the handle a
        VECTOR_SEARCH takes. FAISS collections need a FAISS engine (this process loads
        the files), pgvector ones a pgvector engine on the same server."""
        if self.meta.num_chunks == 0:
            raise CollectionError(f"collection {self.name!r} is empty; add documents first")
        engine = _unwrapped(vector_engine)
        if self.meta.backend is Backend.PGVECTOR:
            from primflow.engines.vector.pgvector_engine import PgVectorEngine

            if not isinstance(engine, PgVectorEngine):
                raise CollectionError(
                    f"collection {self.name!r} is stored in PostgreSQL; engine "
                    f"{vector_engine.name!r} is not a pgvector engine"
                )
            return IndexHandle(engine.name, self.engine_collection, self.meta.num_chunks)
        from primflow.engines.vector.faiss_engine import FaissEngine

        if not isinstance(engine, FaissEngine):
            raise CollectionError(
                f"collection {self.name!r} is a FAISS collection; engine "
                f"{vector_engine.name!r} is not a FAISS engine"
            )
        loaded = self._load_faiss()
        assert loaded is not None  # num_chunks > 0
        return engine.put_shared(self.engine_collection, loaded)

    def _load_faiss(self) -> FaissCollection | None:
        if self._faiss is None and self.meta.num_chunks > 0:
            from primflow.engines.vector.faiss_collection import FaissCollection

            chunks = read_chunks(self.folder / CHUNKS_FILE)
            try:
                self._faiss = FaissCollection.read(self.folder / INDEX_FILE, chunks)
            except (RuntimeError, ValueError) as exc:  # FAISS raises RuntimeError on IO
                raise CollectionError(f"collection {self.name!r}: bad index file: {exc}") from None
            if len(chunks) != self.meta.num_chunks:
                raise CollectionError(
                    f"collection {self.name!r}: {len(chunks)} chunks on disk, meta.json "
                    f"says {self.meta.num_chunks}"
                )
        return self._faiss

    def _pg(self) -> PgVectorEngine:
        if self._pgvector is None:
            raise CollectionError(
                f"collection {self.name!r} is stored in PostgreSQL: open the store with a "
                "pgvector engine"
            )
        return self._pgvector


def _unwrapped(engine: Engine) -> Engine:
    while isinstance(getattr(engine, "inner", None), Engine):
        engine = engine.inner  # type: ignore[attr-defined]
    return engine
