"""Settings of one LLM engine (model file, context size, batching, threads)."""

from __future__ import annotations

from dataclasses import dataclass

from primflow.engines.llm.step_groups import check_cross_query_batching
from primflow.engines.llm.step_order import check_policy
from primflow.engines.profile import DEFAULT_LLM_FAST_PROFILE, LatencyProfile

# llama.cpp's CPU flash-attention kernel (ggml-cpu ops.cpp, GGML_FA_TILE_Q) runs a step of
# >= this many query rows tiled, accumulating V in F32, and a smaller one row by row,
# accumulating V in F16: the two round differently (docs/results/llm-engine.md).
FLASH_ATTN_TILE_ROWS = 64
MAX_NUM_SEQS = 256  # llama.cpp's LLAMA_MAX_SEQ


@dataclass(frozen=True, slots=True)
class LlamaConfig:
    """``model_path`` None means the default SmolLM2-135M-Instruct from its wheel.

    ``n_ctx`` is the KV cache shared by all sequences (unified); one sequence may use
    all of it. ``n_batch`` is the token budget of one step (decode tokens + prompt
    chunks). ``n_seq_max`` bounds live requests plus cached prefixes. Flash attention
    is on by default (llama.cpp's own default here; faster batched decode). Chunked
    prefill stays bit-exact (the logits of a one-shot prefill) because a step that
    computes tokens of a prompt that is open or has >= ``FLASH_ATTN_TILE_ROWS`` tokens
    is padded to that many rows with a scratch sequence (``is_prompt_step_padded``), so
    every piece of such a prompt takes the kernel path a one-shot prefill takes
    (docs/results/llm-engine.md#flash-attention-default).
    """

    model_path: str | None = None
    n_ctx: int = 4096
    n_batch: int = 512
    n_seq_max: int = 32
    n_threads: int = 2
    # Threads of a step that computes ONE token (a lone sequence's decode; llama.cpp's
    # n_threads, n_threads being its n_threads_batch), capped by the step's share of the
    # core budget; None: n_threads. One thread: such a step is 6-20% slower alone, but
    # without OpenMP barriers it does not stall when an outside job takes a core (2
    # threads: decode steps of 3 s under two busy-loops; docs/results/llm-engine.md).
    n_threads_one_token: int | None = 1
    flash_attn: bool = True
    # False: no padding (chunked prefill with flash attention then rounds differently
    # from one-shot); only for measuring it (bench/bench_llm_flash_attn.py).
    is_prompt_step_padded: bool = True
    # "q4_0": serve a Q4_0 conversion of the model (cached on disk, quantize.py); with
    # flash_attn it batches 2x faster at 8 requests but changes the weights slightly.
    quantization: str | None = None
    min_reuse_tokens: int = 8
    max_num_cached_prefixes: int = 8  # finished prompts kept for prefix reuse (LRU)
    # KV cells reserved for a request's generation until its decode phase tells its
    # max_tokens (admission holds requests until prompt + generation fits).
    kv_reserve_tokens: int = 64
    # Open prompts (partial prefills) are speculative: they run only when the engine has
    # nothing else to do (False: in any step's spare budget), in steps of at most this
    # many tokens so a more urgent engine or request is seen again soon (scheduler.py).
    is_speculation_idle_only: bool = True
    max_speculative_tokens_per_step: int = 64
    # Cross-query batching (step_groups.py): "cost" lets another query's work join a
    # step when the step-cost profile predicts it saves more waiting (its query's and
    # that of the queries queued behind) than it adds to the queries in the step; "off":
    # one query's real work per step (FCFS under load); "on": every query's (plain
    # continuous batching).
    # Requests without a query start all count as one query.
    cross_query_batching: str = "cost"
    # Orders requests that name no batching policy (a client without an engine
    # scheduler); others follow their engine scheduler's policy (step_order.py).
    default_policy: str = "critical_path"
    # Sequences per step; None: as many as the token budget holds.
    max_num_seqs_per_step: int | None = None
    # True: this engine gets its own llama thread instead of the process's shared one.
    # Only for measuring the one-thread rule of thread.py (bench/bench_llm_threads.py):
    # it slows every engine of the process down once two threads have called llama.cpp.
    dedicated_thread: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        max_num_seqs = MAX_NUM_SEQS - (1 if self.num_pad_rows else 0)  # the scratch sequence
        if self.n_seq_max < 1 or self.n_seq_max > max_num_seqs:
            raise ValueError(f"n_seq_max must be in [1, {max_num_seqs}], got {self.n_seq_max}")
        if self.n_batch < 16 or self.n_ctx < self.n_batch:
            raise ValueError(f"need 16 <= n_batch <= n_ctx, got {self.n_batch=} {self.n_ctx=}")
        if self.quantization not in (None, "q4_0"):
            raise ValueError(f"quantization must be None or 'q4_0', got {self.quantization!r}")
        if self.kv_reserve_tokens < 1:
            raise ValueError(f"kv_reserve_tokens must be >= 1, got {self.kv_reserve_tokens}")
        if self.n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {self.n_threads}")
        if self.n_threads_one_token is not None and self.n_threads_one_token < 1:
            raise ValueError(f"n_threads_one_token must be >= 1, got {self.n_threads_one_token}")
        check_cross_query_batching(self.cross_query_batching)
        check_policy(self.default_policy)

    @property
    def num_pad_rows(self) -> int:
        """Rows a step with prompt tokens is padded to (0: never). Only with flash
        attention, and only when a step can hold them: with ``n_batch`` below the tile
        size every step runs row by row, the same path as a one-shot prefill."""
        is_padded = self.flash_attn and self.is_prompt_step_padded
        return FLASH_ATTN_TILE_ROWS if is_padded and self.n_batch >= FLASH_ATTN_TILE_ROWS else 0

    def default_profile(self) -> LatencyProfile:
        """The shipped profile of this model option (measured on the reference machine;
        `primflow profile` measures your own): the fast option's when it is on."""
        if self.quantization == "q4_0" and self.flash_attn:
            return DEFAULT_LLM_FAST_PROFILE
        return LatencyProfile.default_for("llm")
