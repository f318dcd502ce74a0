"""The LLM step-cost model: the profile's prediction and `primflow profile`'s fit."""

from __future__ import annotations

import pytest

from primflow.commands.profile_llm import StepSample, fit_step_cost
from primflow.engines.llm.config import LlamaConfig
from primflow.engines.profile import (
    DEFAULT_LLM_FAST_PROFILE,
    LatencyProfile,
    load_profiles,
    save_profiles,
)


def test_step_time_is_a_fixed_cost_plus_a_marginal_cost() -> None:
    profile = LatencyProfile(step_base_s=0.004, step_per_seq_s=0.001, step_per_token_s=0.002)
    assert profile.marginal_step_s(2, 10) == pytest.approx(0.022)
    assert profile.step_s(2, 10) == pytest.approx(0.026)


def test_fit_recovers_the_step_cost_of_exact_samples() -> None:
    def step_s(seqs: int, tokens: int) -> float:
        return 0.004 + 0.0015 * seqs + 0.0025 * tokens

    points = [(1, 1), (2, 2), (4, 4), (8, 8), (1, 20), (1, 100), (1, 300)]
    samples = [StepSample(s, t, step_s(s, t)) for s, t in points]
    fitted = fit_step_cost(samples)
    assert fitted["step_base_s"] == pytest.approx(0.004, rel=1e-6)
    assert fitted["step_per_seq_s"] == pytest.approx(0.0015, rel=1e-6)
    assert fitted["step_per_token_s"] == pytest.approx(0.0025, rel=1e-6)


def test_fit_never_returns_a_negative_cost() -> None:
    samples = [StepSample(1, 1, 0.010), StepSample(2, 2, 0.009), StepSample(1, 50, 0.060)]
    assert all(v >= 0 for v in fit_step_cost(samples).values())


def test_the_step_model_survives_a_saved_profile(tmp_path) -> None:
    path = tmp_path / "profiles.json"
    save_profiles({"llm": DEFAULT_LLM_FAST_PROFILE}, path)
    assert load_profiles(path)["llm"] == DEFAULT_LLM_FAST_PROFILE


def test_each_llm_option_ships_its_own_step_cost() -> None:
    default = LlamaConfig().default_profile()
    fast = LlamaConfig(quantization="q4_0", flash_attn=True).default_profile()
    assert default.step_base_s > 0 and fast.step_base_s > 0
    assert fast == DEFAULT_LLM_FAST_PROFILE and default != fast
