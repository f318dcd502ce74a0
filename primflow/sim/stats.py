"""Latency statistics of a simulated (or measured) run, JSON-serializable.

Invariants: percentiles use linear interpolation (numpy's default) over completed
queries only; failed or timed-out queries are counted, never averaged in. Throughput
is completed queries over the span from the first arrival to the last completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class LatencyStats:
    num_queries: int
    num_completed: int
    num_failed: int
    mean_s: float
    p50_s: float
    p95_s: float
    p99_s: float
    max_s: float
    throughput_qps: float

    @classmethod
    def from_latencies(
        cls,
        latencies_s: Sequence[float],
        *,
        num_failed: int = 0,
        span_s: float | None = None,
    ) -> LatencyStats:
        """Summarize completed-query latencies; ``span_s`` is the run's makespan."""
        values = np.asarray(latencies_s, dtype=float)
        num_completed = int(values.size)
        if num_completed == 0:
            nan = float("nan")
            return cls(num_failed, 0, num_failed, nan, nan, nan, nan, nan, 0.0)
        p50, p95, p99 = (float(v) for v in np.percentile(values, [50, 95, 99]))
        throughput = num_completed / span_s if span_s else float("nan")
        return cls(
            num_queries=num_completed + num_failed,
            num_completed=num_completed,
            num_failed=num_failed,
            mean_s=float(values.mean()),
            p50_s=p50,
            p95_s=p95,
            p99_s=p99,
            max_s=float(values.max()),
            throughput_qps=throughput,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: ``mean 1.234s p50 ... p99 ... (120/120 ok, 2.00 q/s)``."""
        return (
            f"mean {self.mean_s:.3f}s p50 {self.p50_s:.3f}s p95 {self.p95_s:.3f}s "
            f"p99 {self.p99_s:.3f}s ({self.num_completed}/{self.num_queries} ok, "
            f"{self.throughput_qps:.2f} q/s)"
        )
