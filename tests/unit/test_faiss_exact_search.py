"""Exact FAISS collections without an index per query: sealed rows kept as they came,
searched with faiss's own kernel, with the very results of ``IndexFlatIP``."""

import faiss
import numpy as np
import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.unit_vectors import is_sealed, seal_if_unit, seal_unit_rows
from primflow.engines.vector import FaissEngine
from primflow.engines.vector.common import merge_hits, unit_rows
from primflow.engines.vector.faiss_collection import FaissCollection
from primflow.graph.ir import Op
from primflow.values import Chunk, Hit

DIM = 24


def unit_matrix(num_rows: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((num_rows, DIM)).astype(np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def chunks_for(num_rows: int) -> list[Chunk]:
    return [Chunk(f"text {i}", "doc", i) for i in range(num_rows)]


@pytest.mark.parametrize("num_queries", [1, 5, 25])  # faiss: SIMD under 20 rows, BLAS from 20
def test_exact_search_returns_what_index_flat_ip_returns_ties_included(num_queries: int) -> None:
    base = unit_matrix(120, seed=num_queries)
    rows = np.concatenate([base, base[:40]])  # rows 120-159 tie with rows 0-39 exactly
    queries = unit_matrix(num_queries, seed=99)
    queries[0] = rows[3]
    index = faiss.IndexFlatIP(DIM)
    index.add(rows)
    collection = FaissCollection(DIM)
    # Added in three blocks, as pipelined stages ingest: joined once for the search.
    for start, end in ((0, 50), (50, 120), (120, 160)):
        collection.add(chunks_for(160)[start:end], unit_rows(rows[start:end], "v", "ingest"))
    for k in (1, 7, 160):
        want_scores, want_rows = index.search(queries, k)
        got_scores, got_rows = collection.search_rows(unit_rows(queries, "v", "search"), k)
        np.testing.assert_array_equal(got_rows, want_rows)
        np.testing.assert_array_equal(got_scores, want_scores)
    hits = collection.search(unit_rows(queries[:1], "v", "search"), 2)
    _, want_rows = index.search(queries[:1], 2)
    assert [h.chunk.chunk_id for h in hits[0]] == want_rows[0].tolist()  # the tie, as faiss
    assert [h.chunk.chunk_id for h in merge_hits(hits, 2)] == [3, 123]  # the engine's order


def test_sealed_rows_are_kept_without_a_copy_and_others_are_copied() -> None:
    mine = seal_unit_rows(unit_matrix(30, seed=1), is_handed_over=True)
    assert is_sealed(mine) and not mine.flags.writeable
    assert unit_rows(mine, "v", "ingest") is mine  # O(1): checked when sealed
    collection = FaissCollection(DIM)
    collection.add(chunks_for(30), mine)
    assert np.shares_memory(collection.rows(), mine)

    callers = unit_matrix(30, seed=2)
    kept = unit_rows(callers, "v", "ingest")
    assert kept is not callers and callers.flags.writeable  # the caller's array untouched
    other = FaissCollection(DIM)
    other.add(chunks_for(30), kept)
    before = other.search_rows(kept[:1], 3)
    callers[:] = 0.0  # the caller writes to its array afterwards: the collection is unchanged
    after = other.search_rows(kept[:1], 3)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])


def test_copies_slices_and_rewritten_arrays_are_not_sealed() -> None:
    sealed = seal_unit_rows(unit_matrix(8, seed=3), is_handed_over=True)
    assert not is_sealed(sealed.copy())
    assert not is_sealed(sealed[2:])
    assert not is_sealed(np.asarray(sealed.tolist(), dtype=np.float32))
    writeable = seal_unit_rows(unit_matrix(8, seed=4), is_handed_over=True)
    writeable.flags.writeable = True  # switched back on: no longer trusted
    assert not is_sealed(writeable)
    with pytest.raises(ValueError, match="unit vectors"):
        seal_unit_rows(unit_matrix(8, seed=5) * 2.0)
    not_unit = unit_matrix(8, seed=6) * 2.0
    assert seal_if_unit(not_unit) is not_unit and not is_sealed(not_unit)


def test_a_non_unit_or_bad_array_is_still_checked_and_normalized() -> None:
    rows = unit_matrix(6, seed=7) * 3.0
    out = unit_rows(rows, "v", "ingest")
    assert is_sealed(out)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    rows[1, 2] = np.nan
    with pytest.raises(EngineError, match="NaN or infinity"):
        unit_rows(rows, "v", "ingest")


def test_engine_results_equal_index_flat_ip_through_run_batch() -> None:
    engine = FaissEngine()
    rows = seal_unit_rows(unit_matrix(200, seed=8), is_handed_over=True)
    inputs = {"chunks": chunks_for(200), "vectors": rows}
    [ingested] = engine.run_batch(
        [EngineRequest("q", "ingest", Op.VECTOR_INGEST, inputs, {"collection": "c"})]
    )
    assert isinstance(ingested, dict)
    queries = seal_unit_rows(unit_matrix(3, seed=9), is_handed_over=True)
    searches = [
        EngineRequest(
            "q",
            f"s{i}",
            Op.VECTOR_SEARCH,
            {"vectors": queries[i : i + 1], "index": ingested["index"]},
            {"top_k": 4},
        )
        for i in range(3)
    ]
    outcomes = engine.run_batch(searches)  # three searches fused into one faiss call
    index = faiss.IndexFlatIP(DIM)
    index.add(np.asarray(rows))
    _, want = index.search(np.asarray(queries), 4)
    for outcome, expected in zip(outcomes, want.tolist(), strict=True):
        assert isinstance(outcome, dict)
        assert [h.chunk.chunk_id for h in outcome["hits"]] == expected


def _hit(chunk_id: int, score: float) -> Hit:
    return Hit(Chunk(f"t{chunk_id}", "d", chunk_id), score)


@pytest.mark.parametrize(
    "hits",
    [
        [_hit(1, 0.9), _hit(2, 0.8), _hit(3, 0.7)],  # ranked: returned as is
        [_hit(5, 0.9), _hit(2, 0.9), _hit(3, 0.7)],  # a tie out of chunk order
        [_hit(1, 0.9), _hit(1, 0.8), _hit(3, 0.7)],  # one chunk twice
        [_hit(1, 0.7), _hit(2, 0.8)],  # out of score order
        [_hit(1, 0.9), _hit(2, 0.8), _hit(3, 0.7), _hit(4, 0.6)],  # more than k
    ],
)
def test_merge_hits_of_one_row_equals_the_general_merge(hits: list[Hit]) -> None:
    general = sorted(
        {h.chunk.chunk_id: h for h in sorted(hits, key=lambda h: h.score)}.values(),
        key=lambda h: (-h.score, h.chunk.chunk_id),
    )[:3]
    assert merge_hits([hits], 3) == general


def test_copy_write_read_and_the_switch_to_hnsw_keep_the_rows(tmp_path) -> None:
    rows = unit_rows(unit_matrix(40, seed=10), "v", "ingest")
    collection = FaissCollection(DIM, hnsw_threshold=60)
    collection.add(chunks_for(40), rows)
    copied = collection.copy()
    copied.add(chunks_for(45)[40:], unit_rows(unit_matrix(5, seed=11), "v", "ingest"))
    assert len(collection) == 40 and len(collection.rows()) == 40 and len(copied) == 45

    collection.write(tmp_path / "flat.faiss")
    loaded = FaissCollection.read(tmp_path / "flat.faiss", chunks_for(40), hnsw_threshold=60)
    np.testing.assert_array_equal(loaded.rows(), collection.rows())
    assert not loaded.is_hnsw

    # Past the threshold the rows move into HNSW once; an exact neighbour is still found.
    collection.add(chunks_for(70)[40:], unit_rows(unit_matrix(30, seed=12), "v", "ingest"))
    assert collection.is_hnsw and len(collection) == 70
    [hits] = collection.search(rows[5:6], 1)
    assert hits[0].chunk.chunk_id == 5
    collection.write(tmp_path / "hnsw.faiss")
    again = FaissCollection.read(tmp_path / "hnsw.faiss", chunks_for(70))
    assert again.is_hnsw and again.copy().is_hnsw


def test_hits_are_ordinary_frozen_hits() -> None:
    """Hits are made without the dataclass's ``__init__`` (values.hits_of): they must be
    the same values, equal and hashed alike, and as immutable."""
    base = unit_matrix(30, seed=7)
    collection = FaissCollection(DIM)
    collection.add(chunks_for(30), base)
    [hits] = collection.search(base[4:5], 3)
    scores, rows = collection.search_rows(base[4:5], 3)
    chunks = chunks_for(30)
    expected = [Hit(chunks[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True)]
    assert hits == expected and hits[0].chunk.chunk_id == 4
    assert {hash(h) for h in hits} == {hash(h) for h in expected}
    assert all(type(h) is Hit for h in hits)
    with pytest.raises(AttributeError):
        hits[0].score = 0.0  # type: ignore[misc]
