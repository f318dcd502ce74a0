"""FAISS engine against bare faiss calls in one process: the per-request overhead, before
and after a change (issue 18).

For 100, 650 and 2,000 seeded unit vectors of 384 dimensions, one query vector, top 3,
each round times, in alternating order:

- ``raw``: ``IndexFlatIP(384).add(vectors)`` + ``index.search(query, 3)``;
- ``raw_retrieval``: the same plus the hits as (passage, score) pairs (bench_parity_raw.py);
- ``run_batch``: the engine's ingest + search called directly (its own work);
- ``submit``: the same through ``submit``, awaiting the futures (what the runtime calls);
  for one query's ingest + search this is the retrieval step as the apps run it.

Then concurrent searches of one shared collection (650 x 8 and 2,000 x 8 query vectors,
``concurrent``): the raw loop calls ``index.search`` once per query on a prebuilt
``IndexFlatIP``; the engine gets the eight searches as one ``submit`` batch (as the
runtime's scheduler hands a burst over) and the futures are awaited; the row ids are
compared.

Then, per size, the CPU time of single calls (``per_call_us``): faiss's search and
``IndexFlatIP`` + ``add``, the engine's search and ingest through each entry point.

The engine gets what the apps give it: the chunker's chunk list (sealed where the code
under test seals it, ``primflow.values.sealed_chunks_of``; a plain list before) and the
embedder's sealed vectors, with the engine stack's core budget (the vector engine is a
light engine there). Speedup = raw / engine per round, medians reported.

``--clock cpu`` times with this thread's CPU time instead of the wall clock: every
variant runs on this thread (the engine's work here is small enough to run inline), so
on a machine shared with other jobs it leaves out the time the process was not running.

It measures whichever ``primflow`` is on ``PYTHONPATH``, so the code before a change runs
from a checkout of it (same script, same machine, runs alternating):

    mkdir -p build/before && git archive <commit> | tar -x -C build/before
    PYTHONPATH=build/before python bench/bench_parity_faiss_ab.py --label before
    PYTHONPATH=. python bench/bench_parity_faiss_ab.py --label after [--clock cpu]

Prints one result line; merges the label's results into docs/bench/parity_faiss_ab.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from primflow.engines.base import EngineKind, EngineRequest
from primflow.engines.unit_vectors import seal_unit_rows
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.session.stack import make_budget
from primflow.values import Chunk

try:  # the chunker's sealed lists, where the code under test has them
    from primflow.values import sealed_chunks_of
except ImportError:  # before: the chunker made plain lists

    def sealed_chunks_of(chunks: list[Chunk]) -> list[Chunk]:  # type: ignore[misc]
        return chunks


OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "parity_faiss_ab.json"
SIZES = (100, 650, 2000)
CONCURRENT = ((650, 8), (2000, 8))  # (collection rows, searches at once)
DIM = 384
TOP_K = 3
VARIANTS = ("raw", "raw_retrieval", "run_batch", "submit")
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def _requests(query: str, chunks: list[Chunk], vectors: np.ndarray) -> EngineRequest:
    inputs = {"chunks": chunks, "vectors": vectors}
    return EngineRequest(query, "ingest", Op.VECTOR_INGEST, inputs, {"collection": "ab"})


def _search(query: str, vector: np.ndarray, handle: Any) -> EngineRequest:
    inputs = {"vectors": vector, "index": handle}
    return EngineRequest(query, "search", Op.VECTOR_SEARCH, inputs, {"top_k": TOP_K})


class Rows:
    """One size's inputs and the four timed variants (each returns seconds)."""

    def __init__(
        self, engine: FaissEngine, size: int, rng: np.random.Generator, clock: str
    ) -> None:
        self.now_s = CLOCKS[clock]
        vectors = rng.standard_normal((size, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        self.engine = engine
        self.vectors = vectors
        self.query = vectors[:1].copy()
        self.texts = [f"passage {i}" for i in range(size)]
        self.chunks = sealed_chunks_of([Chunk(t, "ab", i) for i, t in enumerate(self.texts)])
        self.sealed = seal_unit_rows(vectors)
        self.sealed_query = seal_unit_rows(self.query)
        self.size = size
        self.num_queries = 0

    def _query_id(self) -> str:
        self.num_queries += 1
        return f"ab{self.size}-{self.num_queries}"  # ended ids are refused: a new one each

    async def raw(self) -> float:
        started_s = self.now_s()
        index = faiss.IndexFlatIP(DIM)
        index.add(self.vectors)
        index.search(self.query, TOP_K)
        return self.now_s() - started_s

    async def raw_retrieval(self) -> float:
        started_s = self.now_s()
        index = faiss.IndexFlatIP(DIM)
        index.add(self.vectors)
        scores, rows = index.search(self.query, TOP_K)
        hits = [(self.texts[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True)]
        seconds = self.now_s() - started_s
        assert len(hits) == TOP_K
        return seconds

    async def run_batch(self) -> float:
        query = self._query_id()
        ingest = _requests(query, self.chunks, self.sealed)
        started_s = self.now_s()
        [ingested] = self.engine.run_batch([ingest])
        assert isinstance(ingested, dict), ingested
        [found] = self.engine.run_batch([_search(query, self.sealed_query, ingested["index"])])
        seconds = self.now_s() - started_s
        assert isinstance(found, dict) and len(found["hits"]) == TOP_K
        self.engine.release(query)
        return seconds

    async def submit(self) -> float:
        query = self._query_id()
        ingest = _requests(query, self.chunks, self.sealed)
        started_s = self.now_s()
        [ingested] = self.engine.submit([ingest])
        handle = (await ingested)["index"]
        [searched] = self.engine.submit([_search(query, self.sealed_query, handle)])
        hits = (await searched)["hits"]
        seconds = self.now_s() - started_s
        assert len(hits) == TOP_K
        self.engine.release(query)
        return seconds


async def measure_size(rows: Rows, num_rounds: int) -> dict[str, Any]:
    variants: dict[str, Callable[[], Awaitable[float]]] = {n: getattr(rows, n) for n in VARIANTS}
    for run in variants.values():
        for _ in range(20):  # warm-up
            await run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(num_rounds):
        names = list(variants) if i % 2 == 0 else list(variants)[::-1]
        for name in names:
            times[name].append(await variants[name]())
        await asyncio.sleep(0)  # let the loop run its callbacks, as between queries
    medians = {name: statistics.median(found) for name, found in times.items()}
    speedups = {}
    for name, raw_name in (("run_batch", "raw"), ("submit", "raw"), ("retrieval", "raw_retrieval")):
        engine_s = times["submit" if name == "retrieval" else name]
        paired = [r / e for r, e in zip(times[raw_name], engine_s, strict=True)]
        speedups[name] = statistics.median(paired)
    return {"median_us": {n: m * 1e6 for n, m in medians.items()}, "speedup_median": speedups}


async def measure_concurrent(
    engine: FaissEngine, size: int, num_queries: int, rng: np.random.Generator, args: Any
) -> dict[str, Any]:
    """Eight searches of one shared collection: raw ``index.search`` per query against one
    engine ``submit`` of the batch, alternating; medians and the paired speedup."""
    now_s = CLOCKS[args.clock]
    vectors = rng.standard_normal((size, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((num_queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    name = f"ab_shared_{size}_{num_queries}"
    chunks = sealed_chunks_of([Chunk(f"p{i}", "ab", i) for i in range(size)])
    handle = engine.create_shared(name, chunks, seal_unit_rows(vectors))
    rows = [queries[i : i + 1] for i in range(num_queries)]
    sealed = [seal_unit_rows(row) for row in rows]
    found: dict[str, list[list[int]]] = {}
    count = [0]

    async def raw() -> float:
        started_s = now_s()
        hits = [index.search(row, TOP_K)[1] for row in rows]
        seconds = now_s() - started_s
        found["raw"] = [h[0].tolist() for h in hits]
        return seconds

    async def submit() -> float:
        count[0] += 1
        requests = [_search(f"c{size}-{count[0]}-{i}", q, handle) for i, q in enumerate(sealed)]
        started_s = now_s()
        outputs = [await future for future in engine.submit(requests)]
        seconds = now_s() - started_s
        found["submit"] = [[h.chunk.chunk_id for h in out["hits"]] for out in outputs]
        for request in requests:
            engine.release(request.query_id)
        return seconds

    times: dict[str, list[float]] = {"raw": [], "submit": []}
    for i in range(20 + args.rounds):
        for name_, run in (("raw", raw), ("submit", submit))[:: 1 if i % 2 else -1]:
            seconds = await run()
            if i >= 20:  # warm-up dropped
                times[name_].append(seconds)
        await asyncio.sleep(0)
    engine.drop_shared(name)
    paired = [r / e for r, e in zip(times["raw"], times["submit"], strict=True)]
    return {
        "median_us": {n: statistics.median(t) * 1e6 for n, t in times.items()},
        "speedup_median": statistics.median(paired),
        "same_rows": found["raw"] == found["submit"],
    }


async def per_call_us(rows: Rows, num_calls: int) -> dict[str, float]:
    """CPU time of single calls (this thread's, median of ``num_calls``, microseconds):
    faiss's search and index + add, and the engine's search and ingest, each through
    ``run_batch`` and ``submit``; a query's collection is freed outside the timing."""
    engine, index = rows.engine, faiss.IndexFlatIP(DIM)
    index.add(rows.vectors)
    query = rows._query_id()
    [ingested] = engine.run_batch([_requests(query, rows.chunks, rows.sealed)])
    assert isinstance(ingested, dict)
    search = _search(query, rows.sealed_query, ingested["index"])

    async def submit_search() -> None:
        [future] = engine.submit([search])
        await future

    async def submit_ingest(request: EngineRequest) -> None:
        [future] = engine.submit([request])
        await future

    calls: dict[str, Callable[[], Any]] = {
        "raw_search": lambda: index.search(rows.query, TOP_K),
        "raw_index_add": lambda: faiss.IndexFlatIP(DIM).add(rows.vectors),
        "search_run_batch": lambda: engine.run_batch([search]),
        "search_submit": submit_search,
        "ingest_run_batch": lambda: engine.run_batch([ingest]),
        "ingest_submit": lambda: submit_ingest(ingest),
    }
    found: dict[str, float] = {}
    for name, call in calls.items():
        times = []
        for _ in range(num_calls):
            ingest = _requests(rows._query_id(), rows.chunks, rows.sealed)
            started_s = time.thread_time()
            done = call()
            if asyncio.iscoroutine(done):
                await done
            times.append(time.thread_time() - started_s)
            engine.release(ingest.query_id)
        found[name] = statistics.median(times[num_calls // 10 :]) * 1e6  # warm-up dropped
    engine.release(query)
    return found


async def main(args: argparse.Namespace) -> dict[str, Any]:
    kinds = {"llm": EngineKind.LLM, "embedder": EngineKind.EMBEDDER}
    kinds["vector_index"] = EngineKind.VECTOR_INDEX
    budget = make_budget("shared", kinds, os.cpu_count())
    engine = FaissEngine("vector_index", budget=budget)
    rng = np.random.default_rng(args.seed)
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "rounds": args.rounds,
        "clock": args.clock,
        "load_avg_start": os.getloadavg(),
        "sizes": {},
        "per_call_us": {},
        "concurrent": {},
    }
    try:
        for size in SIZES:
            rows = Rows(engine, size, rng, args.clock)
            result["sizes"][str(size)] = await measure_size(rows, args.rounds)
            result["per_call_us"][str(size)] = await per_call_us(rows, args.rounds * 5)
        for size, num_queries in CONCURRENT:
            found = await measure_concurrent(engine, size, num_queries, rng, args)
            result["concurrent"][f"{size}x{num_queries}"] = found
    finally:
        await engine.close()
    result["load_avg_end"] = os.getloadavg()
    return result


def one_line(label: str, result: dict[str, Any]) -> str:
    parts = []
    for size, row in result["sizes"].items():
        s = row["speedup_median"]
        parts.append(
            f"{size} rows run_batch {s['run_batch']:.2f}x submit {s['submit']:.2f}x "
            f"retrieval {s['retrieval']:.2f}x"
        )
    for key, row in result["concurrent"].items():
        parts.append(f"{key} concurrent {row['speedup_median']:.2f}x same={row['same_rows']}")
    return f"parity_faiss_ab {label} (raw / engine, median): " + "; ".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="the key of this run in the JSON")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    arguments = parser.parse_args()
    found = asyncio.run(main(arguments))
    saved = json.loads(arguments.out.read_text()) if arguments.out.exists() else {}
    saved.setdefault("benchmark", "parity_faiss_ab")
    key = arguments.label if arguments.clock == "wall" else f"{arguments.label}_cpu"
    saved.setdefault("runs", {}).setdefault(key, []).append(found)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(saved, indent=2) + "\n")
    print(one_line(key, found))
