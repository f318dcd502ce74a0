"""One llama.cpp context holding many sequences: runs a step, edits the KV cache.

Invariants:

- One context per engine, created with ``n_seq_max`` sequences, a unified KV cache
  (sequences share cells after ``seq_cp``) and a full-size SWA cache (so partial
  removal works on sliding-window models).
- ``decode`` runs ONE ``llama_decode`` for the whole step: the decode tokens of every
  running sequence plus prompt chunks. Logit rows it returns are views that are valid
  only until the next ``decode``; copy them to keep them.
- With ``pad_rows`` (flash attention), a step with a chunk marked ``is_padded_prompt``
  and fewer rows gets filler tokens of a scratch sequence (id ``n_seq_max``) after its
  own, removed right after the step: llama.cpp's flash-attention kernel picks its path
  by the step's row count (config.py), so every piece of such a prompt is computed the
  way a one-shot prefill computes it. The filler comes last, so the step's own tokens
  take the cells they would take without it, and removing it moves the KV head back.
  The filler's cells come on top of ``n_ctx``: ``kv_capacity`` (what the sequences may
  use) is at least ``n_ctx``.
- Threads: a step of several tokens runs on ``n_threads`` (the core budget's share, via
  ``set_num_threads``); a step of one token on at most ``n_threads_one_token`` of them
  (llama.cpp's ``n_threads`` / ``n_threads_batch``): with one thread it enters no OpenMP
  barrier, which stalls when an outside job takes a core (docs/results/llm-engine.md).
- Engine thread only (thread.py: one thread makes every llama call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp as lc
import numpy as np

from primflow.engines.llm.model import LlamaModel


@dataclass(frozen=True, slots=True)
class Chunk:
    """Tokens of one sequence computed in a step, starting at KV position ``start_pos``."""

    seq_id: int
    start_pos: int
    tokens: Sequence[int]
    wants_logits: bool
    # Tokens of a prompt a one-shot prefill would compute tiled (open, or long): the
    # step is padded to ``pad_rows`` rows.
    is_padded_prompt: bool = False


class DecodeError(RuntimeError):
    """``llama_decode`` failed; ``is_kv_full`` when it found no room in the KV cache."""

    def __init__(self, status: int) -> None:
        reason = (
            "no room left in the KV cache" if status == 1 else f"llama_decode returned {status}"
        )
        super().__init__(reason)
        self.is_kv_full = status == 1


class LlamaRunner:
    def __init__(
        self,
        model: LlamaModel,
        n_ctx: int,
        n_batch: int,
        n_seq_max: int,
        n_threads: int,
        flash_attn: bool,
        pad_rows: int = 0,
        n_threads_one_token: int | None = None,
    ) -> None:
        params = lc.llama_context_default_params()
        # A step has >= 1 token of its own, so the filler needs at most pad_rows - 1 cells.
        num_pad_cells = max(pad_rows - 1, 0)
        params.n_ctx = n_ctx + num_pad_cells  # llama.cpp rounds it up to a multiple of 256
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_seq_max + 1 if pad_rows else n_seq_max  # + the filler's
        # llama.cpp runs a one-token step on n_threads and any other on n_threads_batch.
        self.max_threads_one_token = n_threads_one_token or n_threads
        params.n_threads = min(self.max_threads_one_token, n_threads)
        params.n_threads_batch = n_threads
        params.kv_unified = True
        params.swa_full = True
        # A prompt prefilled in chunks gives bit-identical logits to one-shot prefill
        # when the last chunk has >= 8 tokens (flash attention off), or when every chunk
        # runs in a step of >= pad_rows rows (flash attention on).
        params.flash_attn_type = (
            lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self.model = model
        self.ctx = lc.llama_init_from_model(model.model, params)
        if not self.ctx:
            raise ValueError(f"llama.cpp could not create a context (n_ctx={n_ctx})")
        self.memory = lc.llama_get_memory(self.ctx)
        self.n_ctx = int(lc.llama_n_ctx(self.ctx))
        self.n_ctx_seq = int(lc.llama_n_ctx_seq(self.ctx))
        self.n_batch = n_batch
        self.n_seq_max = n_seq_max
        self.n_threads = n_threads
        self.pad_rows = pad_rows
        self.pad_seq_id = n_seq_max
        self.kv_capacity = self.n_ctx - num_pad_cells
        self.num_pad_tokens = 0  # filler tokens computed since start
        self._batch = lc.llama_batch_init(n_batch, 0, 1)

    def close(self) -> None:
        if self.ctx:
            lc.llama_batch_free(self._batch)
            lc.llama_free(self.ctx)
            self.ctx = None

    def set_num_threads(self, num_threads: int) -> None:
        """Threads of a multi-token step; a one-token step takes at most
        ``max_threads_one_token`` of them."""
        if num_threads != self.n_threads:
            one_token = min(self.max_threads_one_token, num_threads)
            lc.llama_set_n_threads(self.ctx, one_token, num_threads)
            self.n_threads = num_threads

    def decode(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Compute ``chunks`` in one ``llama_decode``; one logit row per chunk that wants it."""
        batch = self._batch
        batch.n_tokens = 0
        rows: list[int] = []
        for chunk in chunks:
            for offset, token in enumerate(chunk.tokens):
                i = batch.n_tokens
                batch.token[i] = token
                batch.pos[i] = chunk.start_pos + offset
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = chunk.seq_id
                batch.logits[i] = chunk.wants_logits and offset == len(chunk.tokens) - 1
                batch.n_tokens = i + 1
            if chunk.wants_logits:
                rows.append(batch.n_tokens - 1)
        if batch.n_tokens > self.n_batch:  # the scheduler's budget makes this a bug
            raise ValueError(f"step of {batch.n_tokens} tokens exceeds n_batch {self.n_batch}")
        num_pad = self._pad(chunks)
        try:
            status = lc.llama_decode(self.ctx, batch)
        finally:
            if num_pad:
                lc.llama_memory_seq_rm(self.memory, self.pad_seq_id, -1, -1)
        if status != 0:
            raise DecodeError(status)
        shape = (self.model.num_vocab,)
        return [
            np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, i), shape=shape) for i in rows
        ]

    def _pad(self, chunks: Sequence[Chunk]) -> int:
        """Append filler tokens up to ``pad_rows`` rows when a chunk asks for it."""
        batch = self._batch
        num_pad = self.pad_rows - int(batch.n_tokens)
        if num_pad <= 0 or not any(c.is_padded_prompt for c in chunks):
            return 0
        for pos in range(num_pad):
            i = batch.n_tokens
            batch.token[i] = 0
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = self.pad_seq_id
            batch.logits[i] = False
            batch.n_tokens = i + 1
        self.num_pad_tokens += num_pad
        return num_pad

    def remove(self, seq_id: int, start_pos: int = 0) -> None:
        """Drop the sequence's KV from ``start_pos`` on (all of it by default)."""
        lc.llama_memory_seq_rm(self.memory, seq_id, start_pos, -1)

    def copy_prefix(self, src_seq_id: int, dst_seq_id: int, num_tokens: int) -> None:
        """Share the first ``num_tokens`` KV cells of ``src`` with ``dst`` (no recompute)."""
        lc.llama_memory_seq_cp(self.memory, src_seq_id, dst_seq_id, 0, num_tokens)

    def max_pos(self, seq_id: int) -> int:
        """Largest KV position held by the sequence, -1 when it holds none."""
        return int(lc.llama_memory_seq_pos_max(self.memory, seq_id))

    def clear(self) -> None:
        lc.llama_memory_clear(self.memory, True)
