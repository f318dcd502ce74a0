"""Exact top-k of many query rows in one matrix product: the fused searches of a batch.

faiss-cpu 1.15 scans the rows once per query row (SIMD) up to
``faiss.cvar.distance_compute_blas_threshold`` query rows (128,000), so 32 searches in
one faiss call cost what 32 calls do: ~2.3 ms on 2,000 x 384 with one thread. One
``rows @ queries.T`` with numpy's BLAS at one thread reads the rows once for all of
them: ~1 ms with the top k. Below 16 rows faiss's kernel stays: for 8 rows the product
with its top k led in CPU time while the caches held the rows (8 x 650: 67 against
88 us; 8 x 2,000: 175 against 293 us), but not when they did not, as after the LLM's or
another process's work (caches flushed before each call, bench/bench_faiss_cold.py:
8 x 650: 178 against 135 us; 8 x 1,000: 221 against 205 us; 8 x 2,000: 405 against
391 us; 32 rows: the product still 1.0-1.4x faster), and paired with a raw call in
another process it read 0.67x of the raw loop on 2,000 x 8 against 0.80x with faiss's
kernel. So it starts at ``MIN_MATMUL_QUERY_ROWS``: the batches that run on the engine
thread (faiss_engine.py's ``MAX_INLINE_QUERY_ROWS``).

Invariants:

- The result is ``IndexFlatIP``'s for the same inputs, ties aside: the ``k`` highest
  inner products per query row, best first. Ties are decided by row: the lower row
  first among equal scores, and the lower rows kept at the k-th place (faiss keeps
  whichever tied rows its heap holds, so its rows can differ there, its scores not).
  Scores are the BLAS product's float32 values, which may differ from faiss's in the
  last bits (another summation order): rows whose scores are that close may swap
  places, as they do between faiss's own SIMD and BLAS paths.
- numpy's BLAS runs with one thread while a product here runs (:func:`one_blas_thread`,
  threadpoolctl): its pthreads pool would otherwise wake a second thread from 0.5-2 M
  multiply-adds (8 query rows on 650 rows) that keeps spinning after each call, a core
  taken from llama.cpp on a 2-core machine. The setting is process-wide, so it is
  reference counted: it is set when the first product starts and restored when the
  last one ends. BLAS libraries whose threads are OpenMP's (faiss-cpu's own) follow
  the calling thread's OpenMP setting, which the engine sets, and are left alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from primflow.engines.unit_vectors import Matrix

MIN_MATMUL_QUERY_ROWS = 16
# Up to this k the top k is k passes of argmax (~1 us each on 8 x 650), else argpartition.
MAX_ARGMAX_K = 8
# Query rows x collection rows above which a fused search goes to faiss (whose threads
# follow the engine's core budget): ~25 ms of single-thread BLAS at 384 dimensions.
MAX_MATMUL_PRODUCTS = 2_000_000


class _OneBlasThread:
    """Reference-counted ``threadpoolctl`` limit of the non-OpenMP BLAS pools to one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._libs: list[Any] | None = None
        self._saved: list[tuple[Any, int]] = []

    def _controllers(self) -> list[Any]:
        if self._libs is None:
            from threadpoolctl import ThreadpoolController

            found = ThreadpoolController().select(user_api="blas").lib_controllers
            self._libs = [lib for lib in found if lib.threading_layer != "openmp"]
        return self._libs

    def enter(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._saved = [(lib, lib.get_num_threads()) for lib in self._controllers()]
                for lib, num_threads in self._saved:
                    if num_threads != 1:
                        lib.set_num_threads(1)
            self._depth += 1

    def exit(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, num_threads in self._saved:
                    if num_threads != 1:
                        lib.set_num_threads(num_threads)
                self._saved = []


_ONE_BLAS_THREAD = _OneBlasThread()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS at one thread inside the block (see the module docstring)."""
    _ONE_BLAS_THREAD.enter()
    try:
        yield
    finally:
        _ONE_BLAS_THREAD.exit()


def blas_threads() -> list[int]:
    """The thread counts of the BLAS pools :func:`one_blas_thread` limits (for tests)."""
    return [lib.get_num_threads() for lib in _ONE_BLAS_THREAD._controllers()]


def matmul_top_k(
    queries: Matrix, rows: Matrix, k: int
) -> tuple[list[list[float]], list[list[int]]]:
    """The scores and rows of the top ``k`` (1 <= ``k`` <= len(rows)) rows of ``rows``
    per query row by inner product, as ``IndexFlatIP.search`` ranks them, as lists (what
    the hits are made from)."""
    with one_blas_thread():
        # (rows x queries) then one transposing copy: ~20 % less than queries @ rows.T
        scores: Matrix = np.ascontiguousarray((rows @ queries.T).T)
    if k <= MAX_ARGMAX_K:
        return _argmax_top_k(scores, k)
    return _partition_top_k(scores, k)


def _argmax_top_k(scores: Matrix, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """k passes of ``argmax`` per row, each taking the best row left (the first, so the
    lowest, among equal scores) and marking it taken: best first, ties by row. Changes
    ``scores`` (the caller's own product); scores are finite, so -inf is never a tie."""
    num_queries = len(scores)
    every = np.arange(num_queries)
    found_rows = np.empty((num_queries, k), dtype=np.int64)
    found_scores = np.empty((num_queries, k), dtype=np.float32)
    for place in range(k):
        best = scores.argmax(axis=1)
        found_rows[:, place] = best
        found_scores[:, place] = scores[every, best]
        scores[every, best] = -np.inf
    return found_scores.tolist(), found_rows.tolist()


def _partition_top_k(scores: Matrix, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """``argpartition`` per row, the ties at the k-th place settled by row, then the k
    per row ordered in Python (cheaper than numpy's calls on a few values)."""
    num_rows = scores.shape[1]
    if k == num_rows:
        ids = np.argsort(-scores, axis=1, kind="stable")
    else:
        ids = np.argpartition(scores, num_rows - k, axis=1)[:, num_rows - k :]
        kth = scores[np.arange(len(scores))[:, None], ids].min(axis=1)[:, None]
        at_least_kth = scores >= kth
        if np.count_nonzero(at_least_kth) > ids.size:  # a tie at the k-th place somewhere
            for i in np.flatnonzero(np.count_nonzero(at_least_kth, axis=1) > k):
                ids[i] = np.argsort(-scores[i], kind="stable")[:k]  # the lower rows stay
    top = scores[np.arange(len(scores))[:, None], ids]
    ranked = [
        sorted(zip(row_scores, row_ids, strict=True), key=_best_first)
        for row_scores, row_ids in zip(top.tolist(), ids.tolist(), strict=True)
    ]
    return [[s for s, _ in row] for row in ranked], [[r for _, r in row] for row in ranked]


def _best_first(score_row: tuple[float, int]) -> tuple[float, int]:
    return -score_row[0], score_row[1]
