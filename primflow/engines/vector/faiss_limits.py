"""The FAISS engine's inline limits: which ingests and searches run on the caller's thread.

Owns the sizes below which work runs inline (faiss_engine.py's module docstring says
why: ~0.3 ms of work at most on the caller's thread, against 0.1-0.2 ms per hop to the
engine thread and back) and the O(1) tests of a request's inputs they are applied to.
Invariant: a test that cannot size a request says None, so the request goes to the
engine thread, whose checks give the error.
"""

from __future__ import annotations

import numpy as np

# Inline limits (see the module docstring): ~0.3 ms of work at most on the caller's thread.
MAX_INLINE_INGEST_ROWS = 4096
MAX_INLINE_QUERY_ROWS = 16  # from here: the engine thread and one matrix product
MAX_INLINE_SEARCH_ROWS = 20_000  # query rows x collection rows


def is_small_search(num_query_rows: int, num_products: int) -> bool:
    """Whether searches of this many query rows (x collection rows) run inline."""
    return num_query_rows < MAX_INLINE_QUERY_ROWS and num_products <= MAX_INLINE_SEARCH_ROWS


def num_ingest_rows(vectors: object) -> int | None:
    """The rows of an ingest's vectors if they may run inline (a list or an array of
    rows), else None: anything else goes to the engine thread, whose checks say why."""
    if isinstance(vectors, list) or (isinstance(vectors, np.ndarray) and vectors.ndim > 0):
        return len(vectors)
    return None


def num_query_rows(queries: object) -> int | None:
    """The query rows of a search's array (one for a single vector), else None."""
    if not isinstance(queries, np.ndarray) or queries.ndim == 0:
        return None
    return 1 if queries.ndim == 1 else len(queries)
