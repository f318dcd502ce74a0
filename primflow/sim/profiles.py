"""Latency-profile presets for simulated engines, keyed by hardware name.

``cpu`` is this machine's defaults (``primflow.engines.profile.DEFAULT_PROFILES``,
shaped by the 2-core reference machine's measurements). ``gpu`` approximates the
paper's testbed (one RTX 3090 per engine; llama-2-7B, bge-large embedder and reranker,
pgvector): a 1,000-token prefill ~0.26 s (paper Table 3), a decode step ~25 ms,
embedding ~1,000 chunks/s.
Invariant: presets are plain ``LatencyProfile`` values keyed by engine kind; the
simulator never hard-codes a latency elsewhere.
"""

from __future__ import annotations

from primflow.engines.profile import DEFAULT_PROFILES, LatencyProfile

GPU_PROFILES: dict[str, LatencyProfile] = {
    "llm": LatencyProfile(
        base_s=0.015,
        per_token_s=0.00025,
        per_output_token_s=0.025,
        efficient_batch_size=32,
        max_batch_size=64,
        max_batch_tokens=4096,
    ),
    "embedder": LatencyProfile(
        base_s=0.005, per_item_s=0.001, efficient_batch_size=128, max_batch_size=256
    ),
    "reranker": LatencyProfile(
        base_s=0.005, per_item_s=0.0015, efficient_batch_size=64, max_batch_size=128
    ),
    "vector_index": LatencyProfile(
        base_s=0.002, per_item_s=0.0005, efficient_batch_size=128, max_batch_size=256
    ),
    "web_search": LatencyProfile(base_s=0.3, per_item_s=0.0, max_batch_size=32),
    # Users' Python functions run on the host CPU whatever the accelerators: the CPU
    # default (a pool thread's hop; the function's own cost is the user's to profile).
    "function": DEFAULT_PROFILES["function"],
}

PROFILE_PRESETS: dict[str, dict[str, LatencyProfile]] = {
    "cpu": dict(DEFAULT_PROFILES),
    "gpu": GPU_PROFILES,
}


def preset(name: str) -> dict[str, LatencyProfile]:
    """The profiles of preset ``name`` by engine kind; a clear error names the choices."""
    try:
        return dict(PROFILE_PRESETS[name])
    except KeyError:
        known = ", ".join(sorted(PROFILE_PRESETS))
        raise ValueError(f"unknown hardware preset {name!r} (known: {known})") from None
