"""One FAISS collection: chunks plus their unit vectors, searched by inner product.

Exact (``IndexFlatIP``) while small; past ``hnsw_threshold`` items it is rebuilt once as
HNSW (approximate, sub-millisecond at 100k items) and grows
from there. Invariants: row ``i`` of the index is ``chunks[i]``; all vectors have the
collection's ``dim``; scores are cosine similarities because rows are unit vectors.
:meth:`write` / :meth:`read` save the index to one file with FAISS's own format (the
chunks are the caller's to save: see ``primflow/collections``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from primflow.engines.vector.common import Matrix
from primflow.values import Chunk, Hit

HNSW_THRESHOLD = 10_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128


class FaissCollection:
    def __init__(self, dim: int, hnsw_threshold: int = HNSW_THRESHOLD) -> None:
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.chunks: list[Chunk] = []
        self._index: faiss.Index = faiss.IndexFlatIP(dim)
        self.is_hnsw = False

    def __len__(self) -> int:
        return len(self.chunks)

    def add(self, chunks: Sequence[Chunk], vectors: Matrix) -> None:
        if len(vectors) == 0:
            return
        if not self.is_hnsw and len(self.chunks) + len(chunks) > self.hnsw_threshold:
            self._switch_to_hnsw()
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.chunks.extend(chunks)

    def search(self, queries: Matrix, k: int) -> list[list[Hit]]:
        """Top ``k`` hits of each query row (fewer if the collection is smaller)."""
        if len(queries) == 0 or not self.chunks:
            return [[] for _ in range(len(queries))]
        k = min(k, len(self.chunks))
        scores, rows = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return [
            [Hit(self.chunks[r], float(s)) for r, s in zip(row, score, strict=True) if r >= 0]
            for row, score in zip(rows, scores, strict=True)
        ]

    def copy(self) -> FaissCollection:
        """An independent copy: adding to it leaves this one (and its searches) alone."""
        return FaissCollection._of(faiss.clone_index(self._index), self.chunks, self.hnsw_threshold)

    def write(self, path: Path) -> None:
        """Save the index (flat or HNSW) to ``path``."""
        faiss.write_index(self._index, str(path))

    @classmethod
    def read(
        cls, path: Path, chunks: Sequence[Chunk], hnsw_threshold: int = HNSW_THRESHOLD
    ) -> FaissCollection:
        """The collection saved at ``path`` by :meth:`write`, whose rows are ``chunks``."""
        index = faiss.read_index(str(path))
        if index.ntotal != len(chunks):
            raise ValueError(f"{path} holds {index.ntotal} vectors for {len(chunks)} chunks")
        return cls._of(index, chunks, hnsw_threshold)

    @classmethod
    def _of(
        cls, index: faiss.Index, chunks: Sequence[Chunk], hnsw_threshold: int
    ) -> FaissCollection:
        collection = cls(index.d, hnsw_threshold)
        collection._index = index
        collection.chunks = list(chunks)
        if isinstance(index, faiss.IndexHNSWFlat):
            index.hnsw.efSearch = HNSW_EF_SEARCH  # a search setting, not saved with the index
            collection.is_hnsw = True
        return collection

    def _switch_to_hnsw(self) -> None:
        hnsw = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        if self.chunks:
            hnsw.add(self._index.reconstruct_n(0, len(self.chunks)))
        self._index = hnsw
        self.is_hnsw = True
