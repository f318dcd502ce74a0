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
import functools
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primflow.commands.engine_options import OptionError, add_model_options, check_model_options
from primflow.commands.profile_samples import (
    Sample,
    describe,
    fit_profile,
    knee,
    median_sample,
    words,
)
from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile, save_profiles
from primflow.graph.ir import Op
from primflow.values import Chunk, Hit

__all__ = ["Sample", "add_parser", "fit_profile", "knee", "profile_engines", "run"]

_log = logging.getLogger(__name__)

ENGINES = ("embedder", "vector_index", "reranker", "web_search", "llm")


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
    parser.add_argument(
        "--llm-fast",
        action="store_true",
        help="profile the LLM's fast option (Q4_0 conversion with flash attention)",
    )
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    if args.engines.endswith((".yaml", ".yml")):  # an engine file: its remote engines
        from primflow.commands.profile_remote import run_remote

        return run_remote(Path(args.engines), args.out, args.repeats, args.seed)
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ENGINES))
    if unknown:
        print(
            f"primflow profile: unknown engine(s) {unknown}; choose from {list(ENGINES)}",
            file=sys.stderr,
        )
        return 2
    if args.repeats < 1:
        print(f"primflow profile: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    try:
        check_model_options(args)
    except OptionError as exc:
        print(f"primflow profile: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("profiles") / f"{socket.gethostname()}.json"
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        _log.warning("load average %.1f; other work will inflate the latencies", load)
    models = Models(args.llm_model, args.embed_model)
    profiles = asyncio.run(profile_engines(names, args.repeats, args.seed, args.llm_fast, models))
    save_profiles(profiles, out)
    for name, profile in profiles.items():
        print(f"{name:13s} {describe(profile)}")
    print(f"saved {len(profiles)} profile(s) to {out}")
    return 0


@dataclass(frozen=True)
class Models:
    """The model files to profile (None: the shipped ones)."""

    llm: Path | None = None
    embed: Path | None = None


async def profile_engines(
    names: Sequence[str],
    repeats: int,
    seed: int,
    is_llm_fast: bool = False,
    models: Models | None = None,
) -> dict[str, LatencyProfile]:
    chosen = models or Models()
    measures: dict[str, Callable[[int, np.random.Generator], Awaitable[list[Sample]]]] = {
        "embedder": functools.partial(measure_embedder, model_dir=chosen.embed),
        "vector_index": measure_vector,
        "reranker": functools.partial(measure_reranker, model_dir=chosen.embed),
        "web_search": measure_web_search,
    }
    rng = np.random.default_rng(seed)
    profiles = {}
    for name in names:
        if name == "llm":
            from primflow.commands.profile_llm import profile_llm

            profiles[name] = await profile_llm(repeats, rng, is_llm_fast, chosen.llm)
            continue
        samples = await measures[name](repeats, rng)
        profiles[name] = fit_profile(samples, LatencyProfile.default_for(name))
    return profiles


# --- measuring ---


async def measure_embedder(
    repeats: int, rng: np.random.Generator, model_dir: Path | None = None
) -> list[Sample]:
    from primflow.engines.embedder import EmbedderEngine

    engine = EmbedderEngine(model_dir=model_dir)
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


async def measure_reranker(
    repeats: int, rng: np.random.Generator, model_dir: Path | None = None
) -> list[Sample]:
    from primflow.engines.rerank import RerankEngine

    engine = RerankEngine(model_dir=model_dir)
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
