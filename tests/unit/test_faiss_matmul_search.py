"""The fused searches of a batch as one matrix product (matmul_search.py): the rows and
order ``IndexFlatIP`` gives, its tie policy, and numpy's BLAS left as it was."""

import faiss
import numpy as np
import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.unit_vectors import seal_unit_rows
from primflow.engines.vector import FaissEngine
from primflow.engines.vector.faiss_collection import FaissCollection, uses_matmul
from primflow.engines.vector.matmul_search import blas_threads, matmul_top_k, one_blas_thread
from primflow.graph.ir import Op
from primflow.values import Chunk, IndexHandle

DIM = 32


def unit_matrix(num_rows: int, seed: int, dim: int = DIM) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((num_rows, dim)).astype(np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def faiss_search(rows: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(rows)
    return index.search(queries, k)


def assert_same_ranking(
    got: np.ndarray, want: np.ndarray, rows: np.ndarray, queries: np.ndarray
) -> None:
    """The same rows in the same places, but for rows whose exact scores are within
    float32 rounding of each other (another summation order may swap those)."""
    exact = queries.astype(np.float64) @ rows.T.astype(np.float64)
    for i, j in zip(*np.nonzero(got != want), strict=True):
        assert abs(exact[i, got[i, j]] - exact[i, want[i, j]]) < 1e-6, (i, j)
    assert np.mean(got == want) > 0.999


@pytest.mark.parametrize("num_queries", [2, 8, 19, 20, 32])
@pytest.mark.parametrize("num_rows", [1, 3, 100, 650])
def test_same_rows_and_order_as_index_flat_ip_on_random_data(
    num_queries: int, num_rows: int
) -> None:
    rows = unit_matrix(num_rows, seed=num_rows)
    queries = unit_matrix(num_queries, seed=1000 + num_queries)
    for k in sorted({1, min(3, num_rows), min(10, num_rows), num_rows}):
        want_scores, want_rows = faiss_search(rows, queries, k)
        got_scores, got_rows = map(np.array, matmul_top_k(queries, rows, k))
        assert got_rows.shape == (num_queries, k)
        assert_same_ranking(got_rows, want_rows, rows, queries)
        np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-5)


def exact_rows(num_rows: int, seed: int) -> np.ndarray:
    """Unit rows of four +-0.5 entries: every inner product is a multiple of 0.25, exact
    in any summation order, so many rows tie exactly."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((num_rows, DIM), dtype=np.float32)
    for row in rows:
        row[rng.choice(DIM, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return rows


@pytest.mark.parametrize("num_queries", [2, 8, 25])
def test_ties_go_to_the_lower_rows_at_the_cut_and_in_the_order(num_queries: int) -> None:
    rows = exact_rows(300, seed=num_queries)
    queries = exact_rows(num_queries, seed=100 + num_queries)
    exact = (rows.astype(np.float64) @ queries.T.astype(np.float64)).T
    for k in (1, 3, 8, 9, 300):  # 8: the last k of the argmax top k
        scores, found = matmul_top_k(queries, rows, k)
        for i in range(num_queries):
            want = sorted(range(300), key=lambda r, i=i: (-exact[i, r], r))[:k]
            assert found[i] == want  # (-score, row): the lower row among equals
            np.testing.assert_array_equal(scores[i], exact[i, want])
        # faiss's heap keeps whichever tied rows it holds at the cut: the same scores
        faiss_scores, _ = faiss_search(rows, queries, k)
        np.testing.assert_array_equal(scores, faiss_scores)


def test_blas_threads_are_one_inside_and_restored_after_even_when_nested() -> None:
    before = blas_threads()
    with one_blas_thread():
        assert all(n == 1 for n in blas_threads())
        with one_blas_thread():
            assert all(n == 1 for n in blas_threads())
        assert all(n == 1 for n in blas_threads())  # the outer block still holds it
    assert blas_threads() == before
    with pytest.raises(RuntimeError), one_blas_thread():
        raise RuntimeError("a failed product restores the threads too")
    assert blas_threads() == before


def test_the_collection_uses_one_product_for_several_rows_only() -> None:
    assert not uses_matmul(1, 2000) and not uses_matmul(15, 2000)  # faiss's own kernel
    assert not uses_matmul(8, 650)  # an inline burst: faiss's kernel too
    assert uses_matmul(16, 100) and uses_matmul(32, 2000)  # the engine thread's batches
    assert not uses_matmul(1000, 10_000)  # large: faiss, with the engine's threads
    collection = FaissCollection(DIM)
    rows = unit_matrix(50, seed=4)
    collection.add([Chunk(f"t{i}", "d", i) for i in range(50)], seal_unit_rows(rows))
    queries = unit_matrix(25, seed=5)
    hits = collection.search(seal_unit_rows(queries), 80)  # k > rows: every row
    _, want = faiss_search(rows, queries, 50)
    assert_same_ranking(
        np.array([[h.chunk.chunk_id for h in r] for r in hits]), want, rows, queries
    )
    assert FaissCollection(DIM).search(seal_unit_rows(queries), 3) == [[]] * 25  # empty


def search(query: str, vector: np.ndarray, handle: IndexHandle, k: int) -> EngineRequest:
    inputs = {"vectors": vector, "index": handle}
    return EngineRequest(query, "search", Op.VECTOR_SEARCH, inputs, {"top_k": k})


def test_a_fused_engine_batch_gives_each_search_what_index_flat_ip_gives() -> None:
    engine = FaissEngine()
    rows = unit_matrix(400, seed=6, dim=48)
    chunks = [Chunk(f"t{i}", "d", i) for i in range(400)]
    handle = engine.create_shared("shared", chunks, rows)
    queries = unit_matrix(24, seed=7, dim=48)  # 24 rows: one matrix product
    batch = [search(f"q{i}", queries[i : i + 1], handle, 1 + i % 5) for i in range(24)]
    batch.append(search("bad", unit_matrix(1, seed=8), handle, 3))  # dimension 32, not 48
    outcomes = engine.run_batch(batch)
    for i, outcome in enumerate(outcomes[:24]):
        assert isinstance(outcome, dict)
        _, want = faiss_search(rows, queries[i : i + 1], 1 + i % 5)
        assert [h.chunk.chunk_id for h in outcome["hits"]] == want[0].tolist()
        want_scores = rows[want[0]] @ queries[i]
        np.testing.assert_allclose([h.score for h in outcome["hits"]], want_scores, atol=1e-5)
    error = outcomes[24]
    assert isinstance(error, EngineError)
    assert "vectors have dimension 32, the collection has 48" in str(error)


def test_a_fused_batch_on_an_empty_collection_finds_nothing() -> None:
    engine = FaissEngine()
    handle = engine.put_shared("empty", FaissCollection(DIM))
    queries = unit_matrix(21, seed=9)
    outcomes = engine.run_batch([search(f"q{i}", queries[i : i + 1], handle, 3) for i in range(21)])
    assert outcomes == [{"hits": []}] * 21
