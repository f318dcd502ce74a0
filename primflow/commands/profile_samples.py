"""What `primflow profile` measures and how it fits: samples, seeded inputs, timed calls.

Pure helpers shared by the per-engine measurements (profile.py) and the LLM's
(profile_llm.py): the least-squares fit (>= 0) of a ``LatencyProfile`` and the knee of
the throughput curve, seeded random word inputs, and the timing of one engine call.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile

KNEE_FRACTION = 0.9
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


def describe(p: LatencyProfile) -> str:
    text = (
        f"base {p.base_s * 1e3:.2f} ms, per item {p.per_item_s * 1e3:.3f} ms, "
        f"per token {p.per_token_s * 1e3:.4f} ms, per output token "
        f"{p.per_output_token_s * 1e3:.2f} ms, efficient batch {p.efficient_batch_size}"
    )
    if p.step_base_s or p.step_per_seq_s or p.step_per_token_s:
        text += (
            f"; step {p.step_base_s * 1e3:.2f} ms + {p.step_per_seq_s * 1e3:.2f} ms per "
            f"sequence + {p.step_per_token_s * 1e3:.2f} ms per token"
        )
    return text
