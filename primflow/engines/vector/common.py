"""What both vector engines share, as plain functions: input checks, collection names,
merging hits, and the shape of their outputs (the engine logic they share is in
``base_engine.py``).

Invariants: a collection name is ``[A-Za-z0-9_]{1,48}`` (it ends up in SQL identifiers,
so the rule is strict for every backend alike); a per-query collection is addressed as
``<query_id>/<name>`` and a shared one by its bare name. Vectors are normalized to unit
length on the way in, so every backend ranks by cosine similarity (higher is better).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise, repeat
from typing import Any

import numpy as np

from primflow.engines.base import EngineError, EngineRequest, Outputs
from primflow.engines.unit_vectors import Matrix as Matrix  # re-exported for the engines
from primflow.engines.unit_vectors import are_unit, is_sealed, seal_checked, unit_norms
from primflow.graph.ops import CHUNKS, HITS, INDEX, VECTORS
from primflow.values import Chunk, Hit, IndexHandle, is_sealed_chunks

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_]{1,48}$")
DEFAULT_TOP_K = 5


def check_collection_name(name: Any, engine: str, node: str) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name):
        raise EngineError(
            engine, node, f"collection name {name!r} must match {COLLECTION_NAME.pattern}"
        )
    return name


def query_scoped(query_id: str, name: str) -> str:
    return f"{query_id}/{name}"


def is_query_scoped(name: str) -> bool:
    return "/" in name


def names_of_query(names: Iterable[str], query_id: str) -> list[str]:
    """The per-query collection names among ``names`` that belong to ``query_id``."""
    prefix = query_scoped(query_id, "")
    return [name for name in names if name.startswith(prefix)]


def unit_rows(value: Any, engine: str, node: str, dim: int | None = None) -> Matrix:
    """``value`` as a sealed float32 matrix of unit rows (unit_vectors.py), or a clear
    error (shape, dim, NaN). A sealed matrix (the embedder's output) was checked when
    it was made and passes in O(1); anything else is checked here, normalized if its
    rows are not unit, and sealed (copied unless it was converted here)."""
    matrix = value if is_sealed(value) else _checked_unit_rows(value, engine, node)
    if dim is not None and matrix.shape[0] > 0 and matrix.shape[1] != dim:
        raise EngineError(
            engine, node, f"vectors have dimension {matrix.shape[1]}, the collection has {dim}"
        )
    return matrix


def _checked_unit_rows(value: Any, engine: str, node: str) -> Matrix:
    try:
        matrix = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise EngineError(engine, node, f"vectors are not numeric: {err}") from err
    if matrix.ndim == 1 and matrix.size > 0:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise EngineError(engine, node, f"vectors must be a 2-d array, got shape {matrix.shape}")
    # Rows that are unit already are kept as they are: dividing and copying them again
    # made an engine ingest of 2,000 rows cost 5x the faiss call.
    if are_unit(unit_norms(matrix)):
        return seal_checked(matrix, is_handed_over=matrix is not value)
    if not np.isfinite(matrix).all():
        raise EngineError(engine, node, "vectors contain NaN or infinity")
    norms = unit_norms(matrix)[:, None]
    unit: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return seal_checked(unit, is_handed_over=True)


def check_dim(vectors: Matrix, dim: int, name: str, engine: str, node: str) -> None:
    if vectors.shape[1] != dim:
        raise EngineError(
            engine, node, f"vectors have dimension {vectors.shape[1]}, {name!r} has {dim}"
        )


def checked_chunks(value: Any, engine: str, node: str) -> Sequence[Chunk]:
    """``value`` if it is a list of :class:`Chunk`, else a clear error. A sealed list (the
    chunker's and the collections', ``primflow.values``) passes in O(1); anything else
    is checked item by item (``map(isinstance, ...)``: in C, half the time of a
    generator, still 21 us at 650 chunks)."""
    if is_sealed_chunks(value):
        return value
    if not isinstance(value, Sequence) or not all(map(isinstance, value, repeat(Chunk))):
        raise EngineError(engine, node, "chunks must be a list of Chunk")
    return value


def ingest_inputs(request: EngineRequest, engine: str) -> tuple[Sequence[Chunk], Matrix]:
    chunks = checked_chunks(request.inputs.get(CHUNKS), engine, request.node)
    vectors = unit_rows(request.inputs.get(VECTORS), engine, request.node)
    if len(vectors) != len(chunks):
        raise EngineError(engine, request.node, f"{len(chunks)} chunks but {len(vectors)} vectors")
    return chunks, vectors  # the backend copies what it keeps (FAISS: list.extend)


def search_handle(request: EngineRequest, engine: str) -> IndexHandle:
    handle = request.inputs.get(INDEX)
    if not isinstance(handle, IndexHandle):
        raise EngineError(engine, request.node, f"index must be an IndexHandle, got {handle!r}")
    if handle.engine != engine:
        raise EngineError(
            engine, request.node, f"index {handle.collection!r} lives on engine {handle.engine!r}"
        )
    return handle


def top_k(request: EngineRequest, engine: str) -> int:
    value = request.params.get("top_k", DEFAULT_TOP_K)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise EngineError(engine, request.node, f"top_k must be a positive int, got {value!r}")
    return value


def merge_hits(hit_lists: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """Hits of several query vectors: the ``k`` best of each, one per chunk (its best
    score), best first.

    ``k`` applies per query vector, not overall, so searching n vectors in one request
    returns the same candidates as n one-vector searches (what decode pipelining makes
    of it): an optimized graph must retrieve what the unoptimized one does.
    """
    if len(hit_lists) == 1 and _is_ranked(hits := hit_lists[0], k):
        return list(hits)  # one query row, already in that order (FAISS ranks it)
    best: dict[int, Hit] = {}
    for hits in hit_lists:
        for hit in sorted(hits, key=lambda h: (-h.score, h.chunk.chunk_id))[:k]:
            seen = best.get(hit.chunk.chunk_id)
            if seen is None or hit.score > seen.score:
                best[hit.chunk.chunk_id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.chunk.chunk_id))


def _is_ranked(hits: Sequence[Hit], k: int) -> bool:
    """Whether ``hits`` are at most ``k``, of distinct chunks, in (-score, chunk_id) order."""
    if len(hits) > k:
        return False
    for before, after in pairwise(hits):
        if after.score > before.score or (
            after.score == before.score and after.chunk.chunk_id <= before.chunk.chunk_id
        ):
            return False
    return len({hit.chunk.chunk_id for hit in hits}) == len(hits)


def index_outputs(engine: str, collection: str, num_items: int) -> Outputs:
    """What VECTOR_INGEST returns: the handle that VECTOR_SEARCH takes."""
    return {INDEX: IndexHandle(engine, collection, num_items)}


def hits_outputs(hit_lists: Sequence[Sequence[Hit]], k: int) -> Outputs:
    """What VECTOR_SEARCH returns for the hits of its query vectors (see merge_hits)."""
    return {HITS: merge_hits(hit_lists, k)}
