"""Simulation harness pieces that need no runtime: arrivals, statistics, presets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from primflow.sim.arrivals import burst_arrivals, poisson_arrivals
from primflow.sim.profiles import preset
from primflow.sim.stats import LatencyStats


def test_poisson_arrivals_are_seeded_sorted_and_inside_the_window() -> None:
    first = poisson_arrivals(5.0, 20.0, np.random.default_rng(3))
    again = poisson_arrivals(5.0, 20.0, np.random.default_rng(3))
    other = poisson_arrivals(5.0, 20.0, np.random.default_rng(4))
    assert first == again
    assert first != other
    assert first == sorted(first)
    assert first[0] > 0.0 and first[-1] < 20.0


def test_poisson_arrival_count_and_gaps_match_the_rate() -> None:
    arrivals = poisson_arrivals(50.0, 200.0, np.random.default_rng(0))
    # 10,000 expected; a Poisson count has sd 100, so 5 sd is 500.
    assert abs(len(arrivals) - 10_000) < 500
    gaps = np.diff(arrivals)
    assert abs(gaps.mean() - 1 / 50.0) < 0.001
    # Exponential gaps: the coefficient of variation is 1.
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.05


@pytest.mark.parametrize(
    ("rate", "duration", "what"),
    [
        (0.0, 1.0, "request rate"),
        (-2.0, 1.0, "request rate"),
        (math.nan, 1.0, "request rate"),
        (math.inf, 1.0, "request rate"),
        (1.0, 0.0, "duration"),
        (1.0, math.inf, "duration"),
    ],
)
def test_bad_rate_or_duration_is_named(rate: float, duration: float, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        poisson_arrivals(rate, duration, np.random.default_rng(0))


def test_burst_arrivals() -> None:
    assert burst_arrivals(3) == [0.0, 0.0, 0.0]
    assert burst_arrivals(3, 0.5) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="number of queries"):
        burst_arrivals(0)


def test_latency_stats_match_numpy_and_round_trip_through_json() -> None:
    latencies = [0.1 * i for i in range(1, 101)]
    stats = LatencyStats.from_latencies(latencies, num_failed=2, span_s=50.0)
    assert stats.num_queries == 102 and stats.num_completed == 100 and stats.num_failed == 2
    assert stats.mean_s == pytest.approx(5.05)
    assert stats.p50_s == pytest.approx(float(np.percentile(latencies, 50)))
    assert stats.p95_s == pytest.approx(float(np.percentile(latencies, 95)))
    assert stats.p99_s == pytest.approx(float(np.percentile(latencies, 99)))
    assert stats.max_s == pytest.approx(10.0)
    assert stats.throughput_qps == pytest.approx(2.0)
    assert LatencyStats(**json.loads(json.dumps(stats.to_dict()))) == stats
    assert "p99 9.901s" in stats.summary()


def test_latency_stats_with_nothing_completed() -> None:
    stats = LatencyStats.from_latencies([], num_failed=3)
    assert stats.num_queries == 3 and stats.num_completed == 0
    assert math.isnan(stats.mean_s)


def test_presets_cover_every_engine_kind_and_unknown_is_named() -> None:
    for name in ("cpu", "gpu"):
        kinds = set(preset(name))
        assert {"llm", "embedder", "vector_index", "reranker", "web_search"} <= kinds
    # The GPU preset is the faster machine for the model-bound engines.
    assert preset("gpu")["llm"].per_token_s < preset("cpu")["llm"].per_token_s
    with pytest.raises(ValueError, match="unknown hardware preset 'tpu'"):
        preset("tpu")
