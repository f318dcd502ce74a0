"""unit_rows: the vector engines' input check and normalization, with its unit fast path."""

import numpy as np
import pytest

from primflow.engines.base import EngineError
from primflow.engines.vector.common import unit_rows


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_unit_rows_come_back_unchanged() -> None:
    rows = unit(np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    out = unit_rows(rows, "vector", "ingest")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rows)


def test_other_rows_are_normalized() -> None:
    rows = np.random.default_rng(1).standard_normal((20, 8)).astype(np.float32) * 3.0
    rows[0] *= 1 + 1e-4  # near unit but outside the tolerance: normalized too
    out = unit_rows(rows, "vector", "ingest")
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out, unit(rows), atol=1e-7)


def test_a_strided_view_comes_back_contiguous() -> None:
    rows = unit(np.random.default_rng(2).standard_normal((10, 8)).astype(np.float32))
    out = unit_rows(rows[::2], "vector", "ingest")
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, rows[::2])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinity_are_refused_in_unit_and_other_rows(bad: float) -> None:
    rows = unit(np.random.default_rng(3).standard_normal((4, 8)).astype(np.float32))
    rows[2, 5] = bad
    with pytest.raises(EngineError, match="NaN or infinity"):
        unit_rows(rows, "vector", "ingest")


def test_one_row_and_empty_input() -> None:
    np.testing.assert_allclose(unit_rows([3.0, 4.0], "vector", "search"), [[0.6, 0.8]], atol=1e-7)
    assert unit_rows(np.zeros((0, 8), np.float32), "vector", "ingest").shape == (0, 8)
