"""The FAISS section of the parity benchmark (bench_parity.py): the vector engine against
direct faiss calls in the raw process (bench_parity_raw.py), paired and alternating.

Rows, for 100, 650 and 2,000 unit vectors of 384 dimensions (seeded):

- ``micro``: ingest + search of one query, top 3, against ``IndexFlatIP`` add + search,
  with the engine's inputs given two ways: the caller's own writeable array and plain
  chunk list (checked, the array copied so later writes cannot change the collection)
  and what the apps hand over, the embedder's output and the chunker's list (sealed:
  taken in O(1), primflow/engines/unit_vectors.py and primflow/values.py); each through
  ``submit`` (what the runtime calls) and ``run_batch`` (the engine's work alone).
- ``retrieval``: one query's retrieval step as the apps run it: ingest the passages'
  chunks (the chunker's) and vectors (the embedder's), search the question's, hits with
  their passages; the raw loop also turns row ids into (passage, score) pairs. The row
  ids are compared.
- ``pairing``: the engine alone against the engine right after a raw call, with the
  same arrays every time or with fresh ones.
- ``concurrent``: several queries search one shared collection at once (a serving
  burst): the raw loop calls ``index.search`` once per query on a prebuilt index; the
  engine gets the searches as one batch (as the runtime submits them) and runs them
  as one faiss call. The row ids are compared.

In the ``micro`` and ``retrieval`` rows each side's inputs are made anew right before its
timed call, as a new query brings new vectors: the raw side unpickles them for every
call (the process pool sends them); the engine gets fresh copies (untimed). The
``pairing`` rows show what pairing itself costs the engine: right after a raw call it
runs 1.2-3.5x slower than alone, with fresh inputs or not (what being woken costs the
raw side is not measured here; bench_parity_faiss_ab.py compares both in one process).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import bench_parity_raw as raw
import numpy as np
from bench_parity_common import paired_stats
from bench_parity_engines import Sides, paired

from primflow.engines.base import EngineRequest
from primflow.engines.unit_vectors import seal_unit_rows
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.values import Chunk, Hit, IndexHandle

try:  # the chunker's sealed lists, where the code under test has them
    from primflow.values import seal_chunks
except ImportError:  # before: the chunker made plain lists
    seal_chunks = list  # type: ignore[assignment]

SIZES = (100, 650, 2000)
TOP_K = 3
CONCURRENT = ((650, 8), (2000, 8), (2000, 32))  # (collection rows, queries at once)


def summary(name: str, stats: dict[str, Any]) -> str:
    """bench_parity_common.summary in milliseconds (these rows take 0.01-10 ms)."""
    low, high = stats["speedup_range"]
    return (
        f"{name}: raw {stats['raw_median_s'] * 1e3:.3f} ms, engine "
        f"{stats['engine_median_s'] * 1e3:.3f} ms, speedup {stats['speedup_median']:.3f}x "
        f"[{low:.3f}-{high:.3f}]"
    )


def _ingest(query: str, chunks: list[Chunk], vectors: np.ndarray) -> EngineRequest:
    inputs = {"chunks": chunks, "vectors": vectors}
    return EngineRequest(query, "ingest", Op.VECTOR_INGEST, inputs, {"collection": "parity"})


def _search(query: str, vectors: np.ndarray, handle: IndexHandle) -> EngineRequest:
    inputs = {"vectors": vectors, "index": handle}
    return EngineRequest(query, "search", Op.VECTOR_SEARCH, inputs, {"top_k": TOP_K})


async def engine_submit(
    sides: Sides, chunks: list[Chunk], vectors: np.ndarray, query_vector: np.ndarray
) -> tuple[float, list[Hit]]:
    engine = sides.engine("vector_index")
    query = sides.query_id("faiss")
    started_s = time.perf_counter()
    [ingested] = engine.submit([_ingest(query, chunks, vectors)])
    handle: IndexHandle = (await ingested)["index"]
    [searched] = engine.submit([_search(query, query_vector, handle)])
    hits: list[Hit] = (await searched)["hits"]
    seconds = time.perf_counter() - started_s
    engine.release(query)
    return seconds, hits


def engine_run_batch(
    sides: Sides, chunks: list[Chunk], vectors: np.ndarray, query_vector: np.ndarray
) -> float:
    """The engine's own work (``run_batch`` called directly): no futures, no hand-off."""
    engine = sides.engine("vector_index")
    assert isinstance(engine, FaissEngine)
    query = sides.query_id("faiss")
    started_s = time.perf_counter()
    [ingested] = engine.run_batch([_ingest(query, chunks, vectors)])
    assert isinstance(ingested, dict)
    engine.run_batch([_search(query, query_vector, ingested["index"])])
    seconds = time.perf_counter() - started_s
    engine.free_query(query)
    return seconds


Inputs = tuple[list[Chunk], np.ndarray, np.ndarray]


def fresh(chunks: list[Chunk], vectors: np.ndarray, query: np.ndarray, is_sealed: bool) -> Inputs:
    """New copies of the engine's inputs for one timed call (see the module docstring):
    the chunker's and the embedder's sealed outputs, or the caller's own list and arrays."""
    if is_sealed:
        return seal_chunks(chunks), seal_unit_rows(vectors), seal_unit_rows(query)
    return list(chunks), vectors.copy(), query.copy()


def unit_vectors(rng: np.random.Generator, num: int) -> np.ndarray:
    vectors = rng.standard_normal((num, raw.DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


async def micro_rows(sides: Sides, size: int, vectors: np.ndarray, num: int) -> dict[str, Any]:
    chunks = [Chunk(f"p{i}", "parity", i) for i in range(size)]
    query_vector = vectors[:1].copy()

    async def run_raw() -> float:
        ingest_s, search_s, _ = await sides.on_raw(raw.timed_faiss, vectors, query_vector, TOP_K)
        return float(ingest_s + search_s)

    rows: dict[str, Any] = {}
    for key, is_sealed in {"caller": False, "sealed": True}.items():

        async def via_submit(is_sealed: bool = is_sealed) -> float:
            inputs = fresh(chunks, vectors, query_vector, is_sealed)
            return (await engine_submit(sides, *inputs))[0]

        async def via_run_batch(is_sealed: bool = is_sealed) -> float:
            return engine_run_batch(sides, *fresh(chunks, vectors, query_vector, is_sealed))

        for way, run_engine in (("via_submit", via_submit), ("run_batch", via_run_batch)):
            stats = paired_stats(*await paired(num, run_raw, run_engine))
            print(summary(f"faiss ingest+search {size} vectors, {key} array, {way}", stats))
            rows[f"{key}_{way}"] = stats
    return rows


async def retrieval_row(sides: Sides, size: int, vectors: np.ndarray, num: int) -> dict[str, Any]:
    texts = [f"passage {i}" for i in range(size)]
    chunks = [Chunk(text, "parity", i) for i, text in enumerate(texts)]
    question = unit_vectors(np.random.default_rng(size), 1)
    found: dict[str, list[int]] = {}

    async def run_raw() -> float:
        seconds, found["raw"] = await sides.on_raw(
            raw.timed_retrieval, vectors, question, texts, TOP_K
        )
        return float(seconds)

    async def run_engine() -> float:
        inputs = fresh(chunks, vectors, question, is_sealed=True)
        seconds, hits = await engine_submit(sides, *inputs)
        found["engine"] = [h.chunk.chunk_id for h in hits]
        return seconds

    stats = paired_stats(*await paired(num, run_raw, run_engine))
    stats["same_rows"] = found["raw"] == found["engine"]
    print(summary(f"faiss retrieval step {size} passages", stats) + f" same={stats['same_rows']}")
    return stats


async def pairing_row(sides: Sides, size: int, vectors: np.ndarray, num: int) -> dict[str, Any]:
    """What pairing costs the engine: its ingest + search (sealed inputs, via ``submit``)
    alone, right after a raw call with the same arrays every time, and right after a raw
    call with fresh copies; medians in seconds."""
    chunks = [Chunk(f"p{i}", "parity", i) for i in range(size)]
    query = vectors[:1].copy()
    same = fresh(chunks, vectors, query, is_sealed=True)
    found: dict[str, list[float]] = {"alone": [], "after_raw_same": [], "after_raw_fresh": []}
    for _ in range(num):
        found["alone"].append((await engine_submit(sides, *same))[0])
    for key in ("after_raw_same", "after_raw_fresh"):
        for _ in range(num):
            await sides.on_raw(raw.timed_faiss, vectors, query, TOP_K)
            inputs = same if key == "after_raw_same" else fresh(chunks, vectors, query, True)
            found[key].append((await engine_submit(sides, *inputs))[0])
    medians = {key: statistics.median(times) for key, times in found.items()}
    shown = ", ".join(f"{key} {seconds * 1e3:.3f} ms" for key, seconds in medians.items())
    print(f"faiss engine ingest+search {size} vectors: {shown}")
    return medians


async def concurrent_row(
    sides: Sides, size: int, num_queries: int, rng: np.random.Generator, num: int
) -> dict[str, Any]:
    engine = sides.engine("vector_index")
    assert isinstance(engine, FaissEngine)
    vectors = unit_vectors(rng, size)
    queries = unit_vectors(rng, num_queries)
    name = f"parity_shared_{size}_{num_queries}"
    chunks = [Chunk(f"p{i}", "parity", i) for i in range(size)]
    handle = await engine.add_shared(name, chunks, seal_unit_rows(vectors))
    query_rows = [seal_unit_rows(queries[i : i + 1]) for i in range(num_queries)]
    found: dict[str, list[list[int]]] = {}

    async def run_raw() -> float:
        seconds, found["raw"] = await sides.on_raw(raw.timed_searches, vectors, queries, TOP_K)
        return float(seconds)

    async def run_engine() -> float:
        requests = [_search(sides.query_id("faiss"), q, handle) for q in query_rows]
        started_s = time.perf_counter()
        outputs = [await future for future in engine.submit(requests)]
        seconds = time.perf_counter() - started_s
        found["engine"] = [[h.chunk.chunk_id for h in out["hits"]] for out in outputs]
        for request in requests:
            engine.release(request.query_id)
        return seconds

    stats = paired_stats(*await paired(num, run_raw, run_engine))
    stats["same_rows"] = found["raw"] == found["engine"]
    await engine.remove_shared(name)
    label = f"faiss {num_queries} queries at once on {size} shared vectors"
    print(summary(label, stats) + f" same={stats['same_rows']}")
    return stats


async def faiss_section(sides: Sides, seed: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    num = max(repeats, 5) * 4  # sub-millisecond: more repeats
    result: dict[str, Any] = {"micro": {}, "retrieval": {}, "pairing": {}, "concurrent": {}}
    for size in SIZES:
        vectors = unit_vectors(rng, size)
        result["micro"][str(size)] = await micro_rows(sides, size, vectors, num)
        result["retrieval"][str(size)] = await retrieval_row(sides, size, vectors, num)
        result["pairing"][str(size)] = await pairing_row(sides, size, vectors, num)
    for size, num_queries in CONCURRENT:
        key = f"{size}x{num_queries}"
        result["concurrent"][key] = await concurrent_row(sides, size, num_queries, rng, num)
    return result
