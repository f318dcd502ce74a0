"""Embedder throughput: batches fused across primitives and queries vs one request per call.

The workload is what a few concurrent RAG queries send the embedder at once: each query
embeds its question (1 text), its passages (16 texts of 50-300 characters) and three
expanded sub-queries, each its own EMBED primitive of 1 text (as a pipelined
query-expansion decode emits them). Both modes submit the same requests at the same
moment to the same engine:

- ``per_request``: one ``submit`` per request (each runs as its own inference call);
- ``fused``: one ``submit`` of all requests (one length-sorted, sub-batched pass).

Runs alternate (per_request, fused, ...) so machine noise hits both alike; medians are
reported, and the outputs of both modes are checked to agree. Prints one result line;
saves docs/bench/embed_fusion.json.

    .venv/bin/python bench/bench_embed_fusion.py [--seed 0] [--num-queries 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from primflow.engines.base import EngineRequest
from primflow.engines.embedder import EmbedderEngine
from primflow.graph.ir import Op

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "embed_fusion.json"
NUM_PASSAGES = 16
NUM_EXPANSIONS = 3  # sub-queries from a pipelined query-expansion decode, one EMBED each
VOCAB = [
    "the",
    "engine",
    "batches",
    "primitives",
    "of",
    "many",
    "queries",
    "so",
    "that",
    "embedder",
    "runs",
    "fewer",
    "larger",
    "calls",
    "while",
    "language",
    "model",
    "decodes",
    "answers",
    "over",
    "retrieved",
    "passages",
    "from",
    "documents",
]


def workload(seed: int, num_queries: int) -> list[EngineRequest]:
    rng = np.random.default_rng(seed)

    def text(num_chars: int) -> str:
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < num_chars:
            words.append(str(rng.choice(VOCAB)))
        return " ".join(words)

    requests = []
    for q in range(num_queries):
        question = text(int(rng.integers(40, 90))) + "?"
        passages = [text(int(rng.integers(50, 300))) for _ in range(NUM_PASSAGES)]
        requests.append(
            EngineRequest(f"q{q}", "embed_question", Op.EMBED, {"items": [question]}, {})
        )
        requests.append(EngineRequest(f"q{q}", "embed_chunks", Op.EMBED, {"items": passages}, {}))
        for i in range(NUM_EXPANSIONS):
            sub_query = [text(int(rng.integers(30, 80)))]
            requests.append(
                EngineRequest(f"q{q}", f"embed_expansion_{i}", Op.EMBED, {"items": sub_query}, {})
            )
    return requests


async def run_mode(
    engine: EmbedderEngine, requests: list[EngineRequest], mode: str
) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    if mode == "fused":
        futures = engine.submit(requests)
    else:
        futures = [f for r in requests for f in engine.submit([r])]
    outputs = await asyncio.gather(*futures)
    return time.perf_counter() - start, [o["vectors"] for o in outputs]


async def main(seed: int, num_queries: int, repeats: int) -> dict[str, Any]:
    engine = EmbedderEngine()
    await engine.start()
    requests = workload(seed, num_queries)
    num_texts = sum(len(r.inputs["items"]) for r in requests)
    await run_mode(engine, requests, "fused")  # warm-up
    times: dict[str, list[float]] = {"per_request": [], "fused": []}
    max_abs_diff = 0.0
    for _ in range(repeats):
        per_s, per_out = await run_mode(engine, requests, "per_request")
        fused_s, fused_out = await run_mode(engine, requests, "fused")
        times["per_request"].append(per_s)
        times["fused"].append(fused_s)
        diffs = [float(np.abs(a - b).max()) for a, b in zip(per_out, fused_out, strict=True)]
        max_abs_diff = max(max_abs_diff, *diffs)
    await engine.close()
    per_s, fused_s = statistics.median(times["per_request"]), statistics.median(times["fused"])
    return {
        "seed": seed,
        "num_queries": num_queries,
        "num_requests": len(requests),
        "num_texts": num_texts,
        "repeats": repeats,
        "per_request_s": per_s,
        "fused_s": fused_s,
        "per_request_texts_per_s": num_texts / per_s,
        "fused_texts_per_s": num_texts / fused_s,
        "speedup": per_s / fused_s,
        "max_abs_diff": max_abs_diff,
        "times_s": times,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg": os.getloadavg(),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-queries", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(main(args.seed, args.num_queries, args.repeats))
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"embed_fusion: {result['num_texts']} texts in {result['num_requests']} requests: "
        f"per-request {result['per_request_texts_per_s']:.1f} texts/s, "
        f"fused {result['fused_texts_per_s']:.1f} texts/s, speedup {result['speedup']:.2f}x "
        f"(max |diff| {result['max_abs_diff']:.1e})"
    )
