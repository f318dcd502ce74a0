"""Per-request state of the LLM engine: one :class:`Sequence` per LLM call.

A sequence lives from its first prefill phase (LLM_PREFILL or LLM_PARTIAL_PREFILL)
until its query is released or aborted. Invariants:

- ``tokens`` is the prompt followed by the generated tokens; ``tokens[:num_computed]``
  are in the KV cache of slot ``slot``. Everything after ``num_computed`` is the work
  still to do (prompt chunks, or the one sampled token not yet fed back).
- The prompt grows only while it is open (after a partial prefill) and only before
  generation starts; ``num_prompt_tokens`` counts it.
- Positions are per sequence: token ``i`` sits at KV position ``i``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primflow.engines.llm.choice_scoring import ChoiceScorer, Scores
from primflow.engines.llm.output import GenerationOutput
from primflow.engines.llm.sampling import SamplingParams, TokenSampler

_order = itertools.count()
# A calibrated choice's prior: (system prompt, content-free user content, answers).
PriorKey = tuple[str | None, str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class LLMState:
    """The ``state`` value an LLM phase outputs: names the engine-side request."""

    engine: str
    request_id: str
    num_tokens: int
    item_index: int | None = None


@dataclass(slots=True)
class Waiter:
    """A phase future that resolves when the sequence reaches a point."""

    future: asyncio.Future[dict[str, Any]]
    node: str
    num_tokens: int = 0  # prefill phases: resolve once this many tokens are computed
    num_input_tokens: int = 0  # prefill phases: the prompt tokens this phase added
    item_index: int | None = None  # partial decode: resolve when this item exists


@dataclass(eq=False, slots=True)
class Sequence:
    request_id: str
    query_id: str
    tokens: list[int]
    is_prompt_closed: bool
    system: str | None = None
    num_content_chars: int = 0  # user content so far, to refuse an empty prompt
    # What the batching policy orders by (step_order.py), from its latest phase.
    priority: float = 0.0
    query_start_s: float | None = None  # when its query was submitted (None: not said)
    query_priority: int = 0  # the client's priority of its query
    arrival_s: float = 0.0  # when its first phase reached the engine scheduler
    depth: int = 0
    policy: str | None = None  # the engine scheduler's policy (None: the engine's own)
    order: int = field(default_factory=lambda: next(_order))
    slot: int | None = None
    num_computed: int = 0
    num_prompt_tokens: int = 0
    num_reused: int = 0  # prompt tokens taken from another sequence's KV
    # KV admission: the sequence may grow to ``num_reserved`` tokens; the cells it has
    # not computed yet are held back for it. ``max_new_tokens`` is known from the
    # first decode phase on (before that the scheduler reserves a default).
    num_reserved: int = 0
    max_new_tokens: int | None = None
    # Generation, set by the first decode phase.
    sampling: SamplingParams | None = None
    sampler: TokenSampler | None = None
    output: GenerationOutput | None = None
    on_text: Callable[[str], None] | None = None
    loop: asyncio.AbstractEventLoop | None = None  # where on_text runs
    num_items: int | None = None
    decode_node: str = ""
    num_reported_output_tokens: int = 0  # generated tokens already in a decode's usage
    last_logits: np.ndarray | None = None  # saved at the end of prefill for a later decode
    is_finished: bool = False
    finish_reason: str = ""
    prefill_waiters: list[Waiter] = field(default_factory=list)
    decode_waiters: list[Waiter] = field(default_factory=list)
    # A calibrated choice (calibration.py): the prompt with every placeholder content-free
    # (None once a prefill phase came without it), the scorer while it scores, the prior
    # it needs (or, a prior's own sequence, computes) and the scores it decided by.
    content_free: str | None = None
    scorer: ChoiceScorer | None = None
    prior_key: PriorKey | None = None
    is_prior: bool = False
    choice_bias: dict[str, float] = field(default_factory=dict)
    choice_scores: Scores | None = None

    def __post_init__(self) -> None:
        self.num_prompt_tokens = len(self.tokens)

    @property
    def num_pending(self) -> int:
        return len(self.tokens) - self.num_computed

    @property
    def is_generating(self) -> bool:
        return self.sampling is not None

    @property
    def is_prefilling(self) -> bool:
        return self.num_computed < self.num_prompt_tokens

    @property
    def is_prefilled(self) -> bool:
        """The closed prompt is fully computed (its last logits exist)."""
        return self.is_prompt_closed and self.num_computed >= self.num_prompt_tokens

    @property
    def step_group(self) -> str:
        """Its query, for cross-query batching (step_groups.py); requests whose client
        did not say when their query started (no query scheduling) share one group."""
        return self.query_id if self.query_start_s is not None else ""

    @property
    def num_generated(self) -> int:
        return len(self.tokens) - self.num_prompt_tokens

    def append_prompt(self, tokens: list[int], is_last: bool) -> None:
        if self.is_prompt_closed:
            raise ValueError(f"request {self.request_id!r} already has its whole prompt")
        self.tokens.extend(tokens)
        self.num_prompt_tokens = len(self.tokens)
        self.is_prompt_closed = is_last

    def computed_tokens(self) -> list[int]:
        return self.tokens[: self.num_computed]
