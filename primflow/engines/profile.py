"""Latency profiles: an engine's predicted latency as a function of batch size and tokens.

Passes (stage decomposition's micro-batch) and schedulers (critical-path ranks, batch
budgets) read profiles; `primflow profile` measures and saves them. Until a profile is
measured, ``default_for`` gives defaults shaped like the measurements on the 2-core
reference machine: a fixed cost per call plus a cost per item and per token.

Model: latency_s(num_items, num_tokens) = base_s + per_item_s * num_items
                                             + per_token_s * num_tokens
and for LLM decode, per_output_token_s per generated token (one step of a batch).

LLM engines also have a step-cost model, what one engine step (one ``llama_decode`` of
the step's decode tokens and prompt chunks, plus its sampling) takes:

    step_s(num_seqs, num_tokens) = step_base_s + step_per_seq_s * num_seqs
                                   + step_per_token_s * num_tokens

Its marginal cost, ``marginal_step_s``, is what adding one sequence's tokens to a step
costs everyone in the step; ``step_base_s`` is what sharing the step saves the
sequence's query and every query waiting behind it (no step of its own to wait for).
The LLM step planner batches queries by comparing the two
(engines/llm/step_groups.py). Fields are 0 for engines without steps.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """An engine's predicted latency: ``base_s`` per call, plus ``per_item_s`` per item,
    ``per_token_s`` per prompt token and ``per_output_token_s`` per generated token.

    Passes split batches past ``efficient_batch_size`` into stages; schedulers keep
    batches within ``max_batch_size`` and ``max_batch_tokens``.

    Examples:
        >>> from primflow import LatencyProfile
        >>> profile = LatencyProfile(base_s=0.002, per_item_s=0.01, efficient_batch_size=32)
        >>> round(profile.latency_s(num_items=10), 3), profile.micro_batch_size(100)
        (0.102, 25)
        >>> LatencyProfile.default_for("embedder").per_item_s
        0.012
    """

    base_s: float = 0.001
    per_item_s: float = 0.0
    per_token_s: float = 0.0
    per_output_token_s: float = 0.0
    # Batch sizes past this gain little throughput; stage decomposition splits there.
    efficient_batch_size: int = 32
    max_batch_size: int = 64
    max_batch_tokens: int = 4096
    # The step-cost model of engines that run in steps (LLM); see the module docstring.
    step_base_s: float = 0.0
    step_per_seq_s: float = 0.0
    step_per_token_s: float = 0.0

    def latency_s(
        self, num_items: int = 1, num_tokens: int = 0, num_output_tokens: int = 0
    ) -> float:
        return (
            self.base_s
            + self.per_item_s * num_items
            + self.per_token_s * num_tokens
            + self.per_output_token_s * num_output_tokens
        )

    def step_s(self, num_seqs: int, num_tokens: int) -> float:
        """Predicted time of one step carrying ``num_seqs`` sequences' ``num_tokens``."""
        return self.step_base_s + self.marginal_step_s(num_seqs, num_tokens)

    def marginal_step_s(self, num_seqs: int, num_tokens: int) -> float:
        """What adding ``num_seqs`` sequences' ``num_tokens`` to a step makes it longer."""
        return self.step_per_seq_s * num_seqs + self.step_per_token_s * num_tokens

    def micro_batch_size(self, num_items: int) -> int:
        """Items per stage when splitting ``num_items`` into pipelined stages.

        Splits at the efficient batch size, then evens the stages out so the last one
        is not a sliver (e.g. 666 items at 128 -> 6 stages of 111).
        """
        if num_items <= self.efficient_batch_size:
            return num_items
        num_stages = math.ceil(num_items / self.efficient_batch_size)
        return math.ceil(num_items / num_stages)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyProfile:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_changes(self, **changes: Any) -> LatencyProfile:
        return replace(self, **changes)

    @staticmethod
    def default_for(kind: str) -> LatencyProfile:
        return DEFAULT_PROFILES.get(str(kind), LatencyProfile())


# The LLM's step-cost model, measured with `primflow profile --engines llm` (and
# ``--llm-fast``) on the reference machine (2 cores, 2 threads; docs/results/llm-scheduling.md):
# the shipped SmolLM2-135M Q4_1 with the engine's defaults (flash attention on, one-token
# steps on one thread; the mean of two runs, 3.46-3.60 / 1.38-1.45 / 2.04-2.15 ms; with
# flash attention off it was 3.7 / 1.7 / 2.4 ms), and its Q4_0 conversion with flash attention.
STEP_COST_Q4_1 = {"step_base_s": 0.00353, "step_per_seq_s": 0.00141, "step_per_token_s": 0.00209}
STEP_COST_Q4_0_FA = {"step_base_s": 0.0046, "step_per_seq_s": 0.00065, "step_per_token_s": 0.00075}

# Defaults shaped by the CPU measurements on the 2-core reference machine (2 threads):
# embedder ~84 chunks/s, LLM prefill ~360 tok/s and decode ~90 tok/s (SmolLM2-135M),
# HNSW search well under a millisecond, BM25 search ~0.5 ms.
DEFAULT_PROFILES: dict[str, LatencyProfile] = {
    "embedder": LatencyProfile(
        base_s=0.002, per_item_s=0.012, efficient_batch_size=32, max_batch_size=64
    ),
    "llm": LatencyProfile(
        base_s=0.005,
        per_token_s=1 / 360,
        per_output_token_s=1 / 90,
        efficient_batch_size=8,
        max_batch_size=16,
        max_batch_tokens=512,
        **STEP_COST_Q4_1,
    ),
    "vector_index": LatencyProfile(
        base_s=0.0005, per_item_s=0.0002, efficient_batch_size=128, max_batch_size=256
    ),
    "reranker": LatencyProfile(
        base_s=0.002, per_item_s=0.012, efficient_batch_size=32, max_batch_size=64
    ),
    "web_search": LatencyProfile(base_s=0.001, per_item_s=0.0005, max_batch_size=32),
    # A user's function costs what it costs: only the hop to a pool thread is known
    # (~0.1-0.5 ms here). Give a function's engine a profile of its own (per item, for a
    # batchable one) before stage decomposition can see a gain in splitting it.
    "function": LatencyProfile(base_s=0.0005, efficient_batch_size=256, max_batch_size=64),
}


# The LLM's fast option (Q4_0 + flash attention): the same call-level shape, its own steps.
DEFAULT_LLM_FAST_PROFILE = DEFAULT_PROFILES["llm"].with_changes(**STEP_COST_Q4_0_FA)


def save_profiles(profiles: dict[str, LatencyProfile], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: p.to_dict() for k, p in profiles.items()}, indent=2) + "\n")


def load_profiles(path: Path) -> dict[str, LatencyProfile]:
    """Profiles saved by ``save_profiles``: a JSON object of engine name -> fields."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of engine name -> profile")
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise ValueError(f"{path}: profile of {bad[0]!r} is not an object of fields")
    return {k: LatencyProfile.from_dict(v) for k, v in data.items()}
