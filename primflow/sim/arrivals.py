"""Open-loop request arrivals for simulations: a Poisson process, seeded.

Invariant: arrival times are a pure function of (rate, duration, generator state);
they are sorted, start after 0 and end before ``duration_s``.
"""

from __future__ import annotations

import math

import numpy as np


def poisson_arrivals(rate_qps: float, duration_s: float, rng: np.random.Generator) -> list[float]:
    """Arrival times (s) of a Poisson process of ``rate_qps`` over ``[0, duration_s)``."""
    if not (rate_qps > 0 and math.isfinite(rate_qps)):
        raise ValueError(f"request rate must be > 0 queries/s, got {rate_qps}")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"duration must be > 0 s, got {duration_s}")
    arrivals: list[float] = []
    now_s = 0.0
    # Draw gaps in blocks: one call per expected ~rate*duration arrivals keeps it fast.
    block = max(16, int(rate_qps * duration_s * 1.2))
    while True:
        for gap_s in rng.exponential(1.0 / rate_qps, size=block):
            now_s += float(gap_s)
            if now_s >= duration_s:
                return arrivals
            arrivals.append(now_s)


def burst_arrivals(num_queries: int, spacing_s: float = 0.0) -> list[float]:
    """``num_queries`` arrivals ``spacing_s`` apart from t=0 (a burst when 0)."""
    if num_queries < 1:
        raise ValueError(f"number of queries must be >= 1, got {num_queries}")
    if spacing_s < 0:
        raise ValueError(f"spacing must be >= 0 s, got {spacing_s}")
    return [i * spacing_s for i in range(num_queries)]
