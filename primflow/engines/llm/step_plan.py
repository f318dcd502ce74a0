"""What the step scheduler hands the engine thread: one step's plan, and its counters.

Plain data, no logic: the engine applies a plan's ``frees``, then ``copies``, then starts
``started`` sequences, then decodes ``chunks`` in one ``llama_decode``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from primflow.engines.llm.sequence import Sequence


class Admission(Enum):
    ADMITTED = "admitted"
    DEFERRED = "deferred"  # waits for another sequence to compute a shared prefix
    BLOCKED = "blocked"  # no slot or KV room: nothing later in the order is admitted


@dataclass(frozen=True, slots=True)
class ScheduledChunk:
    seq: Sequence
    start: int
    num_tokens: int
    wants_logits: bool


@dataclass(slots=True)
class StepPlan:
    """One step. The engine applies ``frees``, then ``copies``, then decodes ``chunks``;
    ``started`` sequences may take their first token from their saved logits now."""

    chunks: list[ScheduledChunk] = field(default_factory=list)
    copies: list[tuple[int, int, int]] = field(default_factory=list)  # (src, dst, num_tokens)
    frees: list[int] = field(default_factory=list)
    failures: list[tuple[Sequence, str]] = field(default_factory=list)
    started: list[Sequence] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(c.num_tokens for c in self.chunks)

    @property
    def is_idle(self) -> bool:
        return not (self.chunks or self.started or self.copies)


@dataclass(slots=True)
class SchedulerStats:
    num_steps: int = 0
    num_prefilled_tokens: int = 0  # prompt tokens actually computed
    num_reused_tokens: int = 0  # prompt tokens copied from another sequence's KV
    num_prefix_hits: int = 0
    num_decoded_tokens: int = 0
    num_preemptions: int = 0  # parked sequences that gave their cells back
