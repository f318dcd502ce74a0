"""`primflow profile --engines FILE`: measure the remote engines of an engine file.

Each engine the file puts on a server (``backend: openai``) is timed through the same
engine class the stack uses (HTTP included), and fitted like the embedded engines
(commands/profile.py): the LLM at 1 request and prompts of growing length (a warm-up
request, ``max_tokens`` 1, is the closest a server comes to prefill alone), then one
streamed decode of 16 and of 32 tokens and 2 and 4 concurrent ones of 32 (the knee of
their throughput is the efficient batch size); the embedder at batches of 1-32 texts;
the reranker at 1-4 concurrent requests of 8 passages. A remote LLM has no engine
steps, so the step-cost fields are 0.

Saved under the engine's name beside the engine file (``<stem>.profiles.json``), where
`run` and `bench` with ``--engines FILE`` read it; ``--out`` writes elsewhere (then pass
it with ``--profiles``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np

from primflow.commands.profile_samples import (
    Sample,
    describe,
    fit_profile,
    knee,
    median_sample,
    timed,
    words,
)
from primflow.engines.base import Engine, EngineError, EngineKind, EngineRequest
from primflow.engines.profile import LatencyProfile, save_profiles
from primflow.engines.remote.profile import profiles_path_for
from primflow.graph.ir import Op
from primflow.values import Chunk, Hit

# (concurrent streamed decodes, tokens each): two lengths at 1 tell the per-token cost
# from the per-request one.
DECODES = ((1, 16), (1, 32), (2, 32), (4, 32))


def is_engine_file(value: str) -> bool:
    return value.endswith((".yaml", ".yml"))


def run_remote(engines_file: Path, out: Path | None, repeats: int, seed: int) -> int:
    from primflow.session.engine_config import (
        EngineConfigError,
        OpenAIBackend,
        build_remote,
        load_engine_config,
    )

    try:
        config = load_engine_config(engines_file)
    except EngineConfigError as exc:
        print(f"primflow profile: {exc}", file=sys.stderr)
        return 2
    engines = [
        build_remote(name, config.kind_of(name) or EngineKind.LLM, entry, LatencyProfile())
        for name, entry in config.engines.items()
        if isinstance(entry, OpenAIBackend)
    ]
    if not engines:
        print(f"primflow profile: {engines_file} lists no remote engine", file=sys.stderr)
        return 2
    try:
        profiles = asyncio.run(profile_remote(engines, repeats, seed))
    except EngineError as exc:
        print(f"primflow profile: {exc}", file=sys.stderr)
        return 3
    target = out or profiles_path_for(engines_file)
    save_profiles(profiles, target)
    for name, profile in profiles.items():
        print(f"{name:13s} {describe(profile)}")
    where = "" if out else f" (`--engines {engines_file}` reads them from there)"
    print(f"saved {len(profiles)} profile(s) to {target}{where}")
    return 0


async def profile_remote(
    engines: list[Engine], repeats: int, seed: int
) -> dict[str, LatencyProfile]:
    rng = np.random.default_rng(seed)
    profiles: dict[str, LatencyProfile] = {}
    for engine in engines:
        await engine.start()
        try:
            samples = await _measures[engine.kind](engine, repeats, rng)
        finally:
            await engine.close()
        profiles[engine.name] = fit_remote(engine.kind, samples)
    return profiles


NO_STEPS = {"step_base_s": 0.0, "step_per_seq_s": 0.0, "step_per_token_s": 0.0}


def fit_remote(kind: EngineKind, samples: list[Sample]) -> LatencyProfile:
    """The fit of ``samples``; for an LLM, its knee from the decodes alone (a prefill is
    one request whatever the batch) and no step-cost model."""
    profile = fit_profile(samples, LatencyProfile.default_for(kind))
    if kind is not EngineKind.LLM:
        return profile
    decodes = [s for s in samples if s.num_output_tokens > 0]
    efficient = knee(decodes, profile.efficient_batch_size)
    return profile.with_changes(efficient_batch_size=efficient, **NO_STEPS)


async def measure_llm(engine: Any, repeats: int, rng: np.random.Generator) -> list[Sample]:
    samples: list[Sample] = []
    for trial in range(repeats):
        for num_words in (16, 96, 256):
            qid = f"prefill-{trial}-{num_words}"
            prompt = {"q": words(rng, num_words)}
            params = {"template": "{q}", "max_tokens": 1}
            before = engine.stats()["num_prompt_tokens"]
            request = EngineRequest(
                qid, "prefill", Op.LLM_PARTIAL_PREFILL, prompt, params, llm_request_id=qid
            )
            latency_s, _ = await timed(engine, [request])
            num_tokens = engine.stats()["num_prompt_tokens"] - before or num_words
            samples.append(Sample(1, 1, num_tokens, 0, latency_s))
            engine.release(qid)
        for batch_size, num_tokens in DECODES:
            qids = [f"decode-{trial}-{batch_size}-{num_tokens}-{i}" for i in range(batch_size)]
            prompt = {"q": f"Write a long story about a dragon. {words(rng, 4)}"}
            prefills = [
                EngineRequest(q, "p", Op.LLM_PREFILL, prompt, {"template": "{q}"}, llm_request_id=q)
                for q in qids
            ]
            await timed(engine, prefills)
            params = {"max_tokens": num_tokens, "ignore_eos": True}
            decodes = [
                EngineRequest(q, "d", Op.LLM_DECODE, {}, params, llm_request_id=q) for q in qids
            ]
            latency_s, _ = await timed(engine, decodes)
            samples.append(Sample(batch_size, batch_size, 0, num_tokens, latency_s))
            for qid in qids:
                engine.release(qid)
    return samples


async def measure_embedder(engine: Any, repeats: int, rng: np.random.Generator) -> list[Sample]:
    samples = []
    for batch_size in (1, 4, 16, 32):

        def make(n: int = batch_size) -> Any:
            texts = [words(rng, 48) for _ in range(n)]
            request = EngineRequest("profile", "embed", Op.EMBED, {"items": texts}, {})
            return engine, [request], n, 0, 0

        samples.append(await median_sample(repeats, batch_size, make))
    return samples


async def measure_reranker(engine: Any, repeats: int, rng: np.random.Generator) -> list[Sample]:
    samples = []
    for batch_size in (1, 2, 4):

        def make(n: int = batch_size) -> Any:
            requests = []
            for j in range(n):
                hits = [Hit(Chunk(words(rng, 40), "p", i), 0.0) for i in range(8)]
                inputs = {"query": words(rng, 8), "hits": hits}
                requests.append(EngineRequest("profile", f"r{j}", Op.RERANK, inputs, {"top_k": 3}))
            return engine, requests, n * 8, 0, 0

        samples.append(await median_sample(repeats, batch_size, make))
    return samples


_measures = {
    EngineKind.LLM: measure_llm,
    EngineKind.EMBEDDER: measure_embedder,
    EngineKind.RERANKER: measure_reranker,
}
