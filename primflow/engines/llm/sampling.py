"""Sampling parameters and per-sequence token samplers (llama.cpp sampler chains).

Invariants:

- Samplers work on a logit row given as a numpy array, not on "the context's i-th
  output", so the first token can be sampled from logits saved at the end of prefill
  when the decode request arrives later.
- A grammar never makes greedy decoding slower than it must: the unconstrained choice
  is checked against the grammar first and the full vocabulary is filtered only when
  that choice is not allowed (llama.cpp's common sampler does the same).
- Engine thread only; ``close`` frees the native samplers.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import llama_cpp as lc
import numpy as np

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
DEFAULT_MAX_TOKENS = 256
# llama.h's LLAMA_DEFAULT_SEED: the dist sampler then draws a random seed of its own.
RANDOM_SEED = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0  # <= 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None  # None: a random seed (each sequence its own sampler)
    stop: tuple[str, ...] = ()
    # An end-of-generation token does not end generation (vLLM's ignore_eos): answers
    # run to max_tokens or a stop string, so benchmarks compare equal-length answers.
    ignore_eos: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SamplingParams:
        """Read and check a decode node's params; a bad value raises ValueError naming it."""
        stop = params.get("stop") or ()
        ignore_eos = params.get("ignore_eos", False)
        if not isinstance(ignore_eos, bool):
            raise ValueError(f"ignore_eos must be true or false, got {ignore_eos!r}")
        sampling = cls(
            max_tokens=int(params.get("max_tokens", DEFAULT_MAX_TOKENS)),
            temperature=float(params.get("temperature", 0.0)),
            top_p=float(params.get("top_p", 1.0)),
            top_k=int(params.get("top_k", 0)),
            seed=None if params.get("seed") is None else int(params["seed"]),
            stop=(stop,) if isinstance(stop, str) else tuple(str(s) for s in stop),
            ignore_eos=ignore_eos,
        )
        if sampling.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {sampling.max_tokens}")
        if not 0.0 < sampling.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {sampling.top_p}")
        if sampling.temperature < 0.0 or sampling.top_k < 0:
            raise ValueError("temperature and top_k must be >= 0")
        if sampling.seed is not None and not 0 <= sampling.seed < RANDOM_SEED:
            raise ValueError(f"seed must be in [0, {RANDOM_SEED - 1}], got {sampling.seed}")
        return sampling

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= 0.0


class TokenSampler:
    """Chooses the next token of one sequence; keeps the grammar's and RNG's state."""

    def __init__(self, vocab: Any, num_vocab: int, params: SamplingParams, grammar: str | None):
        self._num_vocab = num_vocab
        self._data = np.zeros(num_vocab, dtype=_TOKEN_DATA)
        self._ids = np.arange(num_vocab, dtype=np.int32)
        self._grammar = None
        self._is_plain_greedy = params.is_greedy and grammar is None
        if grammar is not None:
            self._grammar = lc.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not self._grammar:
                raise ValueError("the decode grammar does not parse (GBNF syntax error)")
        self._chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        for sampler in _chain_samplers(params):
            lc.llama_sampler_chain_add(self._chain, sampler)

    def close(self) -> None:
        if self._grammar:
            lc.llama_sampler_free(self._grammar)
            self._grammar = None
        if self._chain:
            lc.llama_sampler_free(self._chain)
            self._chain = None

    def sample(self, logits: np.ndarray) -> int:
        if self._is_plain_greedy:  # no state to keep: skip building the candidate array
            return int(np.argmax(logits))
        token = self._apply(self._chain, logits)
        if self._grammar is not None and not self._grammar_allows(token, logits):
            token = self._apply_constrained(logits)
        if self._grammar is not None:
            lc.llama_sampler_accept(self._grammar, token)
        lc.llama_sampler_accept(self._chain, token)
        return token

    def _fill(self, logits: np.ndarray) -> lc.llama_token_data_array:
        self._data["id"] = self._ids
        self._data["logit"] = logits
        self._data["p"] = 0.0
        pointer = self._data.ctypes.data_as(lc.llama_token_data_p)
        return lc.llama_token_data_array(
            data=pointer, size=self._num_vocab, selected=-1, sorted=False
        )

    def _apply(self, sampler: Any, logits: np.ndarray) -> int:
        candidates = self._fill(logits)
        lc.llama_sampler_apply(sampler, ctypes.byref(candidates))
        return int(candidates.data[candidates.selected].id)

    def _grammar_allows(self, token: int, logits: np.ndarray) -> bool:
        single = np.zeros(1, dtype=_TOKEN_DATA)
        single[0] = (token, logits[token], 0.0)
        candidates = lc.llama_token_data_array(
            data=single.ctypes.data_as(lc.llama_token_data_p), size=1, selected=-1, sorted=False
        )
        lc.llama_sampler_apply(self._grammar, ctypes.byref(candidates))
        return bool(np.isfinite(single[0]["logit"]))

    def _apply_constrained(self, logits: np.ndarray) -> int:
        candidates = self._fill(logits)
        lc.llama_sampler_apply(self._grammar, ctypes.byref(candidates))
        lc.llama_sampler_apply(self._chain, ctypes.byref(candidates))
        return int(candidates.data[candidates.selected].id)


def _chain_samplers(params: SamplingParams) -> list[Any]:
    if params.is_greedy:
        return [lc.llama_sampler_init_greedy()]
    samplers = []
    if params.top_k > 0:
        samplers.append(lc.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        samplers.append(lc.llama_sampler_init_top_p(params.top_p, 1))
    samplers.append(lc.llama_sampler_init_temp(params.temperature))
    seed = RANDOM_SEED if params.seed is None else params.seed
    samplers.append(lc.llama_sampler_init_dist(seed))
    return samplers
