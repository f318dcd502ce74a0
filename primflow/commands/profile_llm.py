"""`primflow profile` for LLM engines: the call-level fit and the step-cost model.

The call-level points are prefills (one call, P prompt tokens) and decodes (b calls, T
tokens each), fitted like every engine's profile (profile.py). The step-cost model is
what one engine step takes,

    step_s = step_base_s + step_per_seq_s * num_seqs + step_per_token_s * num_tokens

fitted with relative errors to decode steps of b sequences and prefill steps of one
sequence's P tokens, timed as the engine's busy time per step (engines/profile.py;
the step planner batches queries by it, engines/llm/step_groups.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from primflow.commands.profile_samples import Sample, fit_profile, timed, words
from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Op


async def profile_llm(
    repeats: int,
    rng: np.random.Generator,
    is_llm_fast: bool = False,
    model_path: Path | None = None,
) -> LatencyProfile:
    """The LLM's call-level fit plus its step-cost model (``fit_step_cost``);
    ``model_path`` None profiles the shipped SmolLM2."""
    from primflow.engines.llm import LlamaEngine

    fast: dict[str, Any] = {"quantization": "q4_0", "flash_attn": True} if is_llm_fast else {}
    path = str(model_path) if model_path is not None else None
    engine = LlamaEngine("llm", path, n_ctx=4096, n_seq_max=16, **fast)
    await engine.start()
    steps = await measure_llm_steps(engine, repeats, rng)  # first: an empty KV cache
    samples = await measure_llm_calls(engine, repeats, rng)
    await engine.close()
    profile = fit_profile(samples, engine.profile)
    return profile.with_changes(**fit_step_cost(steps))


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


# --- the LLM's step-cost model ---


@dataclass(frozen=True, slots=True)
class StepSample:
    """The mean time of one engine step carrying ``num_seqs`` sequences' ``num_tokens``."""

    num_seqs: int
    num_tokens: int
    step_s: float


DECODE_WIDTHS = (1, 2, 4, 8)
PREFILL_SIZES = (16, 64, 160, 320)


async def measure_llm_steps(
    engine: Any, repeats: int, rng: np.random.Generator
) -> list[StepSample]:
    """Decode steps of b sequences (one token each) and prefill steps of one sequence's
    P prompt tokens: the engine's busy time per step (planning, ``llama_decode`` and
    sampling, as when serving; no thread hop), the median over ``repeats`` runs. Each
    point starts from an empty KV cache (every cell in use widens attention)."""
    samples: list[StepSample] = []
    for width in DECODE_WIDTHS:
        runs = []
        for trial in range(repeats):
            qids = [f"steps-{trial}-{width}-{i}" for i in range(width)]
            await llm_phase(
                engine, qids, Op.LLM_PREFILL, {"template": "{q} " + words(rng, 6)}, {"q": "Tell"}
            )
            params = {"max_tokens": 24, "ignore_eos": True}
            runs.append(await _step_sample(engine, qids, Op.LLM_DECODE, params, {}, width))
            for qid in qids:
                engine.abort(qid)  # no cached prefix left: cells in use slow every step
        samples.append(_median(runs))
    for num_words in PREFILL_SIZES:
        runs = []
        for trial in range(repeats):
            qid = f"steps-prefill-{trial}-{num_words}"
            inputs = {"q": words(rng, num_words)}
            runs.append(
                await _step_sample(engine, [qid], Op.LLM_PREFILL, {"template": "{q}"}, inputs)
            )
            engine.abort(qid)
        samples.append(_median(runs))
    return samples


def _median(runs: list[StepSample]) -> StepSample:
    middle = sorted(runs, key=lambda s: s.step_s)[len(runs) // 2]
    return middle


async def _step_sample(
    engine: Any,
    query_ids: list[str],
    op: Op,
    params: dict[str, Any],
    inputs: dict[str, Any],
    num_seqs: int = 1,
) -> StepSample:
    before = engine.stats()
    _, num_prefilled, num_decoded = await llm_phase(engine, query_ids, op, params, inputs)
    after = engine.stats()
    num_steps = max(after["num_steps"] - before["num_steps"], 1)
    busy_s = (after["busy_us"] - before["busy_us"]) / 1e6
    num_tokens = (num_prefilled + num_decoded) / num_steps
    return StepSample(num_seqs, round(num_tokens), busy_s / num_steps)


def fit_step_cost(samples: Sequence[StepSample]) -> dict[str, float]:
    """Least squares (>= 0) of ``step_s = step_base_s + step_per_seq_s * seqs +
    step_per_token_s * tokens``; the LatencyProfile fields it sets.

    Errors are relative (each sample weighted by 1 / its time): the batching rule
    compares small steps (a decode token against a step's fixed cost), which plain
    least squares would sacrifice to fit the long prefill steps."""
    weights = np.array([1.0 / s.step_s for s in samples], dtype=float)
    features = np.array([[1.0, s.num_seqs, s.num_tokens] for s in samples], dtype=float)
    features *= weights[:, None]
    latencies = np.array([s.step_s for s in samples], dtype=float) * weights
    active = [0, 1, 2]
    coefs = np.zeros(3)
    while True:
        solution, *_ = np.linalg.lstsq(features[:, active], latencies, rcond=None)
        negative = [j for j, c in zip(active, solution, strict=True) if c < 0]
        if not negative:
            coefs[active] = solution
            break
        active.remove(min(negative, key=lambda j: solution[active.index(j)]))
    names = ("step_base_s", "step_per_seq_s", "step_per_token_s")
    return {name: float(value) for name, value in zip(names, coefs, strict=True)}
