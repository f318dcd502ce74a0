"""One FAISS collection: chunks plus their unit vectors, searched by inner product.

Exact while small: the rows are kept as the sealed, read-only matrices they came in
(unit_vectors.py; no copy), and a search of one query row is one ``faiss.knn`` call over
them: the very kernel ``IndexFlatIP.search`` runs (``knn_inner_product``, the same SIMD
code and tie order), without building an index per query or copying the rows into one.
From 16 query rows (a batch's fused searches) it is one matrix product with numpy's
BLAS instead, with ``IndexFlatIP``'s ranking, ties aside (matmul_search.py). Past
``hnsw_threshold`` items it is rebuilt once as HNSW (approximate, sub-millisecond at
100k items) and grows from there.

Invariants: row ``i`` is ``chunks[i]``; all vectors have the collection's ``dim``;
scores are cosine similarities because rows are unit vectors; the kept matrices are
read-only, so nothing outside can change them. :meth:`write` / :meth:`read` save the
index to one file with FAISS's own format (``IndexFlatIP`` for an exact collection; the
chunks are the caller's to save: see ``primflow/collections``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

from primflow.engines.unit_vectors import Matrix, is_sealed, seal_checked
from primflow.engines.vector.matmul_search import (
    MAX_MATMUL_PRODUCTS,
    MIN_MATMUL_QUERY_ROWS,
    matmul_top_k,
)
from primflow.values import Chunk, Hit, hits_of

HNSW_THRESHOLD = 10_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128

Rows = npt.NDArray[np.int64]


class FaissCollection:
    def __init__(self, dim: int, hnsw_threshold: int = HNSW_THRESHOLD) -> None:
        self.dim = dim
        self.hnsw_threshold = hnsw_threshold
        self.chunks: list[Chunk] = []
        self._blocks: list[Matrix] = []  # exact: the rows, read-only, in order
        self._hnsw: faiss.IndexHNSWFlat | None = None

    @property
    def is_hnsw(self) -> bool:
        return self._hnsw is not None

    def __len__(self) -> int:
        return len(self.chunks)

    def add(self, chunks: Sequence[Chunk], vectors: Matrix) -> None:
        """Add unit rows (``unit_rows``' output: sealed ones are kept without a copy)."""
        if len(vectors) == 0:
            return
        if self._hnsw is None and len(self.chunks) + len(chunks) > self.hnsw_threshold:
            self._switch_to_hnsw()
        if self._hnsw is not None:
            self._hnsw.add(np.ascontiguousarray(vectors, dtype=np.float32))
        else:
            self._blocks.append(_read_only(vectors))
        self.chunks.extend(chunks)

    def search(self, queries: Matrix, k: int) -> list[list[Hit]]:
        """Top ``k`` hits of each query row (fewer if the collection is smaller)."""
        if len(queries) == 0 or not self.chunks:
            return [[] for _ in range(len(queries))]
        k = min(k, len(self.chunks))
        if self._hnsw is None and uses_matmul(len(queries), len(self.chunks)):
            scores, rows = matmul_top_k(queries, self.rows(), k)
        else:
            found_scores, found_rows = self.search_rows(queries, k)
            # tolist(): Python floats and ints in one C pass, not numpy scalars per hit.
            scores, rows = found_scores.tolist(), found_rows.tolist()
        chunks = self.chunks
        return [hits_of(chunks, row, score) for row, score in zip(rows, scores, strict=True)]

    def search_rows(self, queries: Matrix, k: int) -> tuple[Matrix, Rows]:
        """FAISS's ``(scores, rows)`` of the top ``k`` (``k`` <= len(self)) per query."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self._hnsw is not None:
            found: tuple[Matrix, Rows] = self._hnsw.search(queries, k)
            return found
        return exact_search(queries, self.rows(), k)

    def rows(self) -> Matrix:
        """All rows of an exact collection as one read-only matrix (blocks added by
        several ingests, e.g. pipelined stages, are joined once, on the next search)."""
        if len(self._blocks) != 1:
            joined = (
                np.concatenate(self._blocks)
                if self._blocks
                else np.zeros((0, self.dim), dtype=np.float32)
            )
            self._blocks = [seal_checked(joined, is_handed_over=True)]
        return self._blocks[0]

    def copy(self) -> FaissCollection:
        """An independent copy: adding to it leaves this one (and its searches) alone."""
        copied = FaissCollection(self.dim, self.hnsw_threshold)
        copied.chunks = list(self.chunks)
        if self._hnsw is not None:
            clone = faiss.clone_index(self._hnsw)
            assert isinstance(clone, faiss.IndexHNSWFlat)  # clone_index downcasts
            clone.hnsw.efSearch = HNSW_EF_SEARCH  # a search setting, not copied
            copied._hnsw = clone
        else:
            copied._blocks = list(self._blocks)  # read-only matrices: shared safely
        return copied

    def write(self, path: Path) -> None:
        """Save the index (flat or HNSW) to ``path``."""
        index: faiss.Index
        if self._hnsw is not None:
            index = self._hnsw
        else:
            index = faiss.IndexFlatIP(self.dim)
            index.add(self.rows())
        faiss.write_index(index, str(path))

    @classmethod
    def read(
        cls, path: Path, chunks: Sequence[Chunk], hnsw_threshold: int = HNSW_THRESHOLD
    ) -> FaissCollection:
        """The collection saved at ``path`` by :meth:`write`, whose rows are ``chunks``."""
        index = faiss.read_index(str(path))
        if index.ntotal != len(chunks):
            raise ValueError(f"{path} holds {index.ntotal} vectors for {len(chunks)} chunks")
        collection = cls(index.d, hnsw_threshold)
        collection.chunks = list(chunks)
        if isinstance(index, faiss.IndexHNSWFlat):
            index.hnsw.efSearch = HNSW_EF_SEARCH  # a search setting, not saved with the index
            collection._hnsw = index
        elif index.ntotal:
            rows = index.reconstruct_n(0, index.ntotal)
            collection._blocks = [seal_checked(rows, is_handed_over=True)]
        return collection

    def _switch_to_hnsw(self) -> None:
        hnsw = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        if self.chunks:
            hnsw.add(self.rows())
        self._hnsw = hnsw
        self._blocks = []


def exact_search(queries: Matrix, rows: Matrix, k: int) -> tuple[Matrix, Rows]:
    """``faiss.knn`` with the inner product, minus its Python checks (both matrices are
    C-contiguous float32 of one dimension here): what ``IndexFlatIP.search`` computes."""
    num_queries, dim = queries.shape
    scores = np.empty((num_queries, k), dtype=np.float32)
    ids = np.empty((num_queries, k), dtype=np.int64)
    faiss.knn_inner_product(
        faiss.swig_ptr(queries),
        faiss.swig_ptr(rows),
        dim,
        num_queries,
        len(rows),
        k,
        faiss.swig_ptr(scores),
        faiss.swig_ptr(ids),
    )
    return scores, ids


def uses_matmul(num_queries: int, num_rows: int) -> bool:
    """Whether an exact search of ``num_queries`` rows is one matrix product with numpy's
    BLAS (matmul_search.py): from ``MIN_MATMUL_QUERY_ROWS`` rows (the batches the engine
    runs on its thread) up to ``MAX_MATMUL_PRODUCTS``."""
    return num_queries >= MIN_MATMUL_QUERY_ROWS and num_queries * num_rows <= MAX_MATMUL_PRODUCTS


def _read_only(vectors: Matrix) -> Matrix:
    """``vectors`` if sealed (no one can write them), else a read-only copy."""
    return vectors if is_sealed(vectors) else seal_checked(vectors)
