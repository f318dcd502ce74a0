"""Fitting measured latencies into LatencyProfiles (`primflow profile`), no engines."""

import argparse

import pytest

from primflow.commands import profile as cmd
from primflow.commands.profile import Sample, fit_profile, knee
from primflow.engines.profile import LatencyProfile


def test_fit_recovers_a_linear_cost_model() -> None:
    base_s, per_item_s, per_token_s = 0.003, 0.001, 0.0002
    samples = [
        Sample(n, n, n * w, 0, base_s + per_item_s * n + per_token_s * n * w)
        for n in (1, 2, 4, 8, 16, 32)
        for w in (10, 60)
    ]
    profile = fit_profile(samples, LatencyProfile())
    assert profile.base_s == pytest.approx(base_s, rel=1e-6)
    assert profile.per_item_s == pytest.approx(per_item_s, rel=1e-6)
    assert profile.per_token_s == pytest.approx(per_token_s, rel=1e-6)
    assert profile.per_output_token_s == 0.0


def test_fit_never_gives_negative_costs() -> None:
    # Latency falls slightly with items (noise): the item term is dropped, not negative.
    samples = [Sample(n, n, 100 * n, 0, 0.01 + 0.002 * n - 0.0001 * n) for n in (1, 2, 4, 8)]
    samples += [Sample(n, n, 50 * n, 0, 0.01 + 0.001 * n - 0.0001 * n) for n in (1, 2, 4, 8)]
    profile = fit_profile(samples, LatencyProfile())
    assert min(profile.base_s, profile.per_item_s, profile.per_token_s) >= 0.0


def test_fit_keeps_limits_of_the_defaults() -> None:
    samples = [Sample(n, n, 0, 0, 0.001 * n + 0.002) for n in (1, 4, 16)]
    defaults = LatencyProfile(max_batch_size=99, max_batch_tokens=123)
    profile = fit_profile(samples, defaults)
    assert (profile.max_batch_size, profile.max_batch_tokens) == (99, 123)


def test_knee_is_the_smallest_batch_near_the_best_throughput() -> None:
    # Fixed cost 10 ms + 1 ms per item: throughput n / (0.01 + 0.001 n) saturates.
    samples = [Sample(n, n, 0, 0, 0.01 + 0.001 * n) for n in (1, 2, 4, 8, 16, 32, 64, 128)]
    # 90% of the best (128 / 0.138 = 927/s) is 835/s: 64 gives 865/s, 32 gives 761/s.
    assert knee(samples, default=7) == 64
    assert knee(samples[:1], default=7) == 7


def test_unknown_engine_is_refused_before_measuring(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(engines="embedder,gpu", out=None, repeats=1, seed=0)
    assert cmd.run(args) == 2
    out = capsys.readouterr()
    assert "unknown engine(s) ['gpu']" in out.err and out.out == ""  # errors go to stderr
