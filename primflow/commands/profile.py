"""Measure the embedded engines' latency profiles on this machine (`primflow profile`).

Saves the fitted ``LatencyProfile``s; passes and schedulers read them with ``load_profiles``.

For each engine it times real calls through the engine (thread hop included) over a
range of batch sizes and text lengths, then fits

    latency_s = base_s + per_item_s * items + per_token_s * tokens
                + per_output_token_s * output_tokens        (least squares, >= 0)

and sets ``efficient_batch_size`` to the knee of the throughput curve: the smallest
batch size reaching ``KNEE_FRACTION`` of the best measured throughput. Inputs are
seeded random word sequences, all distinct (the embedder dedupes repeats and the LLM
reuses prefixes, either would hide the real cost). Medians over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import socket
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile, save_profiles
from primflow.graph.ir import Op
from primflow.values import Chunk, Hit

KNEE_FRACTION = 0.9
ENGINES = ("embedder", "vector_index", "reranker", "web_search", "llm")
WORDS = [
    "data",
    "graph",
    "query",
    "model",
    "engine",
    "vector",
    "batch",
    "token",
    "cache",
    "search",
    "answer",
    "document",
    "river",
    "mountain",
    "network",
    "latency",
    "python",
    "system",
    "paper",
    "result",
    "method",
    "table",
    "index",
    "memory",
    "value",
]


@dataclass(frozen=True, slots=True)
class Sample:
    batch_size: int
    num_items: int
    num_tokens: int
    num_output_tokens: int
    latency_s: float


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="output JSON (default: profiles/<host>.json)"
    )
    parser.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma-separated subset of {','.join(ENGINES)}, or a YAML engine file "
        "(a path ending .yaml/.yml): then its remote engines are measured",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (median)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.engines.endswith((".yaml", ".yml")):  # an engine file: its remote engines
        # profile_remote builds on this module's fitting; imported by name, no cycle.
        remote = importlib.import_module("primflow.commands.profile_remote")
        return int(remote.run_remote(Path(args.engines), args.out, args.repeats, args.seed))
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ENGINES))
    if unknown:
        print(f"primflow profile: unknown engine(s) {unknown}; choose from {list(ENGINES)}")
        return 2
    if args.repeats < 1:
        print(f"primflow profile: --repeats must be >= 1, got {args.repeats}")
        return 2
    out = args.out or Path("profiles") / f"{socket.gethostname()}.json"
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f}; other work will inflate the latencies")
    profiles = asyncio.run(profile_engines(names, args.repeats, args.seed))
    save_profiles(profiles, out)
    for name, profile in profiles.items():
        print(f"{name:13s} {describe(profile)}")
    print(f"saved {len(profiles)} profile(s) to {out}")
    return 0


def describe(p: LatencyProfile) -> str:
    return (
        f"base {p.base_s * 1e3:.2f} ms, per item {p.per_item_s * 1e3:.3f} ms, "
        f"per token {p.per_token_s * 1e3:.4f} ms, per output token "
        f"{p.per_output_token_s * 1e3:.2f} ms, efficient batch {p.efficient_batch_size}"
    )


async def profile_engines(
    names: Sequence[str], repeats: int, seed: int
) -> dict[str, LatencyProfile]:
    measures: dict[str, Callable[[int, np.random.Generator], Awaitable[list[Sample]]]] = {
        "embedder": measure_embedder,
        "vector_index": measure_vector,
        "reranker": measure_reranker,
        "web_search": measure_web_search,
        "llm": measure_llm,
    }
    rng = np.random.default_rng(seed)
    profiles = {}
    for name in names:
        samples = await measures[name](repeats, rng)
        profiles[name] = fit_profile(samples, LatencyProfile.default_for(name))
    return profiles


# --- fitting (pure) ---


def fit_profile(samples: Sequence[Sample], defaults: LatencyProfile) -> LatencyProfile:
    """Non-negative least squares by dropping negative terms and refitting."""
    columns = ["base_s", "per_item_s", "per_token_s", "per_output_token_s"]
    features = np.array(
        [[1.0, s.num_items, s.num_tokens, s.num_output_tokens] for s in samples], dtype=float
    )
    latencies = np.array([s.latency_s for s in samples], dtype=float)
    # A term no sample varies cannot be told apart from the base: leave it out.
    active = [0] + [j for j in (1, 2, 3) if np.ptp(features[:, j]) > 0]
    coefs = np.zeros(4)
    while True:
        solution, *_ = np.linalg.lstsq(features[:, active], latencies, rcond=None)
        negative = [j for j, c in zip(active, solution, strict=True) if c < 0 and j != 0]
        if not negative:
            coefs[active] = np.maximum(solution, 0.0)
            break
        active.remove(min(negative, key=lambda j: solution[active.index(j)]))
    changes: dict[str, Any] = {c: float(v) for c, v in zip(columns, coefs, strict=True)}
    changes["efficient_batch_size"] = knee(samples, defaults.efficient_batch_size)
    return defaults.with_changes(**changes)


def knee(samples: Sequence[Sample], default: int) -> int:
    """Smallest batch size whose throughput reaches KNEE_FRACTION of the best."""
    by_size: dict[int, list[float]] = {}
    for s in samples:
        by_size.setdefault(s.batch_size, []).append(max(s.num_items, 1) / s.latency_s)
    if len(by_size) < 2:
        return default
    throughput = {b: statistics.median(v) for b, v in by_size.items()}
    best = max(throughput.values())
    return min(b for b, t in throughput.items() if t >= KNEE_FRACTION * best)


# --- measuring ---


def words(rng: np.random.Generator, num_words: int) -> str:
    return " ".join(rng.choice(WORDS, size=num_words))


async def timed(engine: Any, requests: list[EngineRequest]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    outputs = await asyncio.gather(*engine.submit(requests))
    return time.perf_counter() - start, outputs


async def median_sample(
    repeats: int,
    batch_size: int,
    make: Callable[[], tuple[Any, list[EngineRequest], int, int, int]],
) -> Sample:
    latencies, sizes = [], (0, 0, 0)
    for _ in range(repeats):
        engine, requests, *counts = make()
        latency_s, _ = await timed(engine, requests)
        latencies.append(latency_s)
        sizes = (counts[0], counts[1], counts[2])
    return Sample(batch_size, *sizes, statistics.median(latencies))


async def measure_embedder(repeats: int, rng: np.random.Generator) -> list[Sample]:
    from primflow.engines.embedder import EmbedderEngine

    engine = EmbedderEngine()
    await engine.start()
    samples = []
    for num_words in (8, 48):
        for batch_size in (1, 2, 4, 8, 16, 32, 64):

            def make(n: int = batch_size, w: int = num_words) -> Any:
                texts = [words(rng, w) for _ in range(n)]
                num_tokens = sum(engine.encoder.count_tokens(texts))
                request = EngineRequest("profile", "embed", Op.EMBED, {"items": texts}, {})
                return engine, [request], n, num_tokens, 0

            samples.append(await median_sample(repeats, batch_size, make))
    await engine.close()
    return samples


async def measure_vector(repeats: int, rng: np.random.Generator) -> list[Sample]:
    from primflow.engines.vector import FaissEngine

    engine = FaissEngine()
    vectors = rng.standard_normal((20_000, 384)).astype(np.float32)
    chunks = [Chunk(f"c{i}", "profile", i) for i in range(len(vectors))]
    handle = engine.create_shared("profile", chunks, vectors)
    samples = []
    for batch_size in (1, 2, 4, 8, 16, 32, 64, 128):

        def make(n: int = batch_size) -> Any:
            queries = rng.standard_normal((n, 384)).astype(np.float32)
            inputs = {"vectors": queries, "index": handle}
            req = EngineRequest("profile", "search", Op.VECTOR_SEARCH, inputs, {"top_k": 10})
            return engine, [req], n, 0, 0

        samples.append(await median_sample(repeats, batch_size, make))
    await engine.close()
    return samples


async def measure_reranker(repeats: int, rng: np.random.Generator) -> list[Sample]:
    from primflow.engines.rerank import RerankEngine

    engine = RerankEngine()
    samples = []
    for batch_size in (1, 2, 4, 8):

        def make(n: int = batch_size) -> Any:
            requests = []
            for j in range(n):
                hits = [Hit(Chunk(words(rng, 40), "p", i), 0.0) for i in range(8)]
                inputs = {"query": words(rng, 8), "hits": hits}
                requests.append(EngineRequest("profile", f"r{j}", Op.RERANK, inputs, {"top_k": 3}))
            return engine, requests, n * 8, 0, 0

        samples.append(await median_sample(repeats, batch_size, make))
    await engine.close()
    return samples


async def measure_web_search(repeats: int, rng: np.random.Generator) -> list[Sample]:
    from primflow.engines.websearch import Bm25Backend, SearchRecord, WebSearchEngine

    records = [SearchRecord("", f"doc{i}", words(rng, 50)) for i in range(5_000)]
    engine = WebSearchEngine(Bm25Backend(records))
    samples = []
    for batch_size in (1, 2, 4, 8, 16, 32):

        def make(n: int = batch_size) -> Any:
            queries = [words(rng, 5) for _ in range(n)]
            inputs = {"queries": queries}
            req = EngineRequest("profile", "web", Op.WEB_SEARCH, inputs, {"top_k": 5})
            return engine, [req], n, 0, 0

        samples.append(await median_sample(repeats, batch_size, make))
    await engine.close()
    return samples


async def measure_llm(repeats: int, rng: np.random.Generator) -> list[Sample]:
    """Prefill points (1 item, P prompt tokens) and decode points (b sequences, T tokens)."""
    from primflow.engines.llm import LlamaEngine

    engine = LlamaEngine("llm", n_ctx=4096, n_seq_max=16)
    await engine.start()
    samples = await measure_llm_calls(engine, repeats, rng)
    await engine.close()
    return samples


async def measure_llm_calls(engine: Any, repeats: int, rng: np.random.Generator) -> list[Sample]:
    samples: list[Sample] = []
    for trial in range(repeats):
        for num_words in (16, 96, 256):
            qid = f"prefill-{trial}-{num_words}"
            latency_s, num_tokens, _ = await llm_phase(
                engine, [qid], Op.LLM_PREFILL, {"template": "{q}"}, {"q": words(rng, num_words)}
            )
            samples.append(Sample(1, 1, num_tokens, 0, latency_s))
            engine.release(qid)
        for batch_size in (1, 2, 4, 8):
            qids = [f"decode-{trial}-{batch_size}-{i}" for i in range(batch_size)]
            prompt = {"q": "Write a long story about a dragon and a river."}
            await llm_phase(
                engine, qids, Op.LLM_PREFILL, {"template": "{q} " + words(rng, 4)}, prompt
            )
            latency_s, _, num_out = await llm_phase(
                engine, qids, Op.LLM_DECODE, {"max_tokens": 32}, {}
            )
            samples.append(Sample(batch_size, batch_size, 0, num_out // batch_size, latency_s))
            for qid in qids:
                engine.release(qid)
    return samples


async def llm_phase(
    engine: Any, query_ids: list[str], op: Op, params: dict[str, Any], inputs: dict[str, Any]
) -> tuple[float, int, int]:
    """Run one phase for each query at once; latency and token counts from engine stats."""
    node = "prefill" if op is Op.LLM_PREFILL else "decode"
    requests = [
        EngineRequest(q, node, op, inputs, params, llm_request_id=f"{q}/call") for q in query_ids
    ]
    before = engine.stats()
    latency_s, _ = await timed(engine, requests)
    await asyncio.sleep(0.05)  # the engine publishes its counters after the step
    after = engine.stats()
    return (
        latency_s,
        after.get("num_prefilled_tokens", 0) - before.get("num_prefilled_tokens", 0),
        after.get("num_decoded_tokens", 0) - before.get("num_decoded_tokens", 0),
    )
