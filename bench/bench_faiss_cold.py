"""faiss's kernel against one matrix product for a few query rows, with warm and with
flushed caches (issue 18: which kernel an inline burst of searches should use).

For 8 seeded unit query vectors of 384 dimensions on 650, 1,000 and 2,000 unit rows,
top 3, in alternating order, the CPU time of this thread (median of ``--calls``) of:

- ``faiss``: ``exact_search`` (faiss's ``knn_inner_product``, one thread, the kernel the
  engine runs below 16 query rows) and the results as lists;
- ``product``: ``matmul_top_k`` (numpy's ``rows @ queries.T`` at one BLAS thread and its
  top k), the engine's kernel from 16 query rows.

``warm`` calls follow one another; ``cold`` calls each come after a write pass over a
64 MB buffer, which flushes the caches as the LLM's or another process's work does
between a server's searches. Speedup = faiss / product (above 1.0 the product is
faster). Prints one result line; saves docs/bench/faiss_cold_cache.json.

    PYTHONPATH=. python bench/bench_faiss_cold.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from primflow.engines.vector.faiss_collection import exact_search
from primflow.engines.vector.matmul_search import matmul_top_k

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "faiss_cold_cache.json"
SIZES = (650, 1000, 2000)
NUM_QUERIES = 8
DIM = 384
TOP_K = 3
FLUSH_BYTES = 64 * 2**20  # twice this machine's 32 MB L3


def unit_rows(rng: np.random.Generator, num: int) -> np.ndarray:
    rows = rng.standard_normal((num, DIM)).astype(np.float32)
    unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


def timed_us(call: Callable[[], object], flush: np.ndarray | None, num_calls: int) -> float:
    """Median CPU time of ``call`` in microseconds, each call after a flush if given."""
    times = []
    for _ in range(num_calls):
        if flush is not None:
            flush += 1.0
        started_ns = time.thread_time_ns()
        call()
        times.append(time.thread_time_ns() - started_ns)
    return statistics.median(times) / 1e3


def measure(size: int, rng: np.random.Generator, num_calls: int) -> dict[str, Any]:
    rows, queries = unit_rows(rng, size), unit_rows(rng, NUM_QUERIES)

    def faiss_kernel() -> object:
        scores, ids = exact_search(queries, rows, TOP_K)
        return scores.tolist(), ids.tolist()

    def product() -> object:
        return matmul_top_k(queries, rows, TOP_K)

    assert faiss_kernel()[1] == product()[1]  # the same rows (random data: no ties)
    flush = np.zeros(FLUSH_BYTES // 4, dtype=np.float32)
    found: dict[str, Any] = {}
    for state, flushed in (("warm", None), ("cold", flush)):
        us: dict[str, list[float]] = {"faiss": [], "product": []}
        for i in range(6):  # alternating rounds
            order = (("faiss", faiss_kernel), ("product", product))[:: 1 if i % 2 else -1]
            for name, call in order:
                us[name].append(timed_us(call, flushed, num_calls))
        medians = {name: statistics.median(times) for name, times in us.items()}
        found[state] = {"median_us": medians, "speedup": medians["faiss"] / medians["product"]}
    return found


def main(args: argparse.Namespace) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)  # as the engine runs a search under 16 rows
    rng = np.random.default_rng(args.seed)
    sizes = {f"{size}x{NUM_QUERIES}": measure(size, rng, args.calls) for size in SIZES}
    return {
        "benchmark": "faiss_cold_cache",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "calls": args.calls,
        "sizes": sizes,
    }


def one_line(result: dict[str, Any]) -> str:
    parts = [
        f"{key} warm {row['warm']['speedup']:.2f}x cold {row['cold']['speedup']:.2f}x"
        for key, row in result["sizes"].items()
    ]
    return "faiss_cold_cache (faiss / product, CPU time): " + "; ".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    arguments = parser.parse_args()
    result = main(arguments)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2) + "\n")
    print(one_line(result))
