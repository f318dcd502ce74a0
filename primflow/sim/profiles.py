"""Latency-profile presets for simulated engines, keyed by hardware name.

``cpu`` is this machine's defaults (``primflow.engines.profile.DEFAULT_PROFILES``,
shaped by the 2-core reference machine's measurements). ``gpu`` approximates the
paper's testbed (one RTX 3090 per engine; llama-2-7B, bge-large embedder and reranker,
pgvector): a 1,000-token prefill ~0.26 s (paper Table 3), a decode step ~25 ms,
embedding ~1,000 chunks/s.
``paper-7b`` / ``paper-13b`` / ``paper-30b`` are the paper's setups (Teola's evaluation)
with their core LLM's step costs (llama-2-7B on one 3090, llama-2-13B on two, llama-30B on
two A800s; the judge stays llama-2-7B), ``paper-gemma-2b`` the contextualizer's.
Invariant: presets are plain ``LatencyProfile`` values keyed by engine kind (or by
engine name, e.g. ``judge``, which wins); the simulator never hard-codes a latency
elsewhere.
"""

from __future__ import annotations

from primflow.engines.profile import DEFAULT_PROFILES, LatencyProfile


def gpu_llm(step_base_s: float, step_per_seq_s: float, step_per_token_s: float) -> LatencyProfile:
    """An LLM served on GPUs (vLLM-like), from its step costs: a decode step reads the
    weights (``step_base_s``, memory-bound), each sequence adds its KV reads
    (``step_per_seq_s``), each prompt token its FLOPs (``step_per_token_s``).
    The call-level fields say the same for passes and the ``calls`` LLM model."""
    return LatencyProfile(
        base_s=0.015,
        per_token_s=step_per_token_s,
        per_output_token_s=step_base_s + step_per_seq_s + step_per_token_s,
        efficient_batch_size=32,
        max_batch_size=64,
        max_batch_tokens=4096,
        step_base_s=step_base_s,
        step_per_seq_s=step_per_seq_s,
        step_per_token_s=step_per_token_s,
    )


# The paper's LLMs on its GPUs (Teola's evaluation), fp16, estimated from the
# hardware: decode steps are weight reads at ~75 % of memory bandwidth (RTX 3090 936 GB/s,
# A800 2,039 GB/s; tensor parallel over 2 GPUs halves them, plus ~4 ms of all-reduce),
# prefill is ~2 FLOPs per parameter per token at ~50 % of fp16 peak (3090 71 TFLOPS,
# A800 312 TFLOPS). The 7B's prefill matches paper Table 3 (1,000 tokens ~0.26 s).
LLAMA2_7B_3090 = gpu_llm(step_base_s=0.022, step_per_seq_s=0.0002, step_per_token_s=0.00025)
LLAMA2_13B_2X3090 = gpu_llm(step_base_s=0.024, step_per_seq_s=0.0003, step_per_token_s=0.0004)
LLAMA_30B_2XA800 = gpu_llm(step_base_s=0.026, step_per_seq_s=0.0003, step_per_token_s=0.0002)
GEMMA2_2B_3090 = gpu_llm(step_base_s=0.009, step_per_seq_s=0.0001, step_per_token_s=0.00008)

GPU_PROFILES: dict[str, LatencyProfile] = {
    "llm": LatencyProfile(
        base_s=0.015,
        per_token_s=0.00025,
        per_output_token_s=0.025,
        efficient_batch_size=32,
        max_batch_size=64,
        max_batch_tokens=4096,
        # The llama-2-7B step costs, for the ``steps`` LLM model (calls ignore them).
        step_base_s=LLAMA2_7B_3090.step_base_s,
        step_per_seq_s=LLAMA2_7B_3090.step_per_seq_s,
        step_per_token_s=LLAMA2_7B_3090.step_per_token_s,
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


def _paper(core_llm: LatencyProfile) -> dict[str, LatencyProfile]:
    """The paper's testbed with ``core_llm`` as the core LLM; the judge (search app's
    proxy LLM) stays llama-2-7B on a 3090, as in the paper."""
    return {**GPU_PROFILES, "llm": core_llm, "judge": LLAMA2_7B_3090}


PROFILE_PRESETS: dict[str, dict[str, LatencyProfile]] = {
    "cpu": dict(DEFAULT_PROFILES),
    "gpu": GPU_PROFILES,
    "paper-7b": _paper(LLAMA2_7B_3090),
    "paper-13b": _paper(LLAMA2_13B_2X3090),
    "paper-30b": _paper(LLAMA_30B_2XA800),
    "paper-gemma-2b": _paper(GEMMA2_2B_3090),
}


def preset(name: str) -> dict[str, LatencyProfile]:
    """The profiles of preset ``name`` by engine kind; a clear error names the choices."""
    try:
        return dict(PROFILE_PRESETS[name])
    except KeyError:
        known = ", ".join(sorted(PROFILE_PRESETS))
        raise ValueError(f"unknown hardware preset {name!r} (known: {known})") from None
