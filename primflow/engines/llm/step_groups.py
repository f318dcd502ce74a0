"""Which queries' work may share one LLM step: cross-query batching by step cost.

Each query is a *step group* (``Sequence.step_group``). The first query in the step
order with real work (a closed prompt to prefill or a token to decode) leads the step;
whether another query's work joins it is ``cross_query_batching``'s call:

- ``"cost"`` (the engine default): work of another query joins when the engine's
  profile predicts that the step time it adds for the queries already in the step,
  ``num_other_queries * marginal_step_s(work)``, is less than what it saves itself:
  a step of its own, which costs ``step_base_s`` more than the step time it adds here
  (engines/profile.py). A decode token is small and a step has a fixed cost, so
  decodes of several queries share steps; a prompt chunk costs about as much in a
  shared step as alone, so it waits for a step that does not slow older queries down.
  On a compute-bound profile (``step_base_s`` near 0) no other query ever joins; a
  profile without a step model (all zeros) behaves the same.
- ``"off"``: only the leading query's real work (the earlier fixed one query per step).
- ``"on"``: every query's work (plain continuous batching).

Invariants: speculative work (open prompts) never earns a query the lead, and it is
not subject to this rule (the planner runs it only in otherwise idle steps). Requests
whose client did not say when their query started share one group, so query-unaware
clients keep plain continuous batching whatever the mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Ordered

from primflow.engines.llm.sequence import Sequence
from primflow.engines.profile import LatencyProfile

CROSS_QUERY_BATCHING = ("cost", "off", "on")


def check_cross_query_batching(mode: str) -> str:
    if mode not in CROSS_QUERY_BATCHING:
        known = ", ".join(CROSS_QUERY_BATCHING)
        raise ValueError(f"cross_query_batching must be one of {known}, got {mode!r}")
    return mode


class StepGroups:
    """The queries of one step being planned, and who may join them."""

    def __init__(self, mode: str, profile: LatencyProfile, ordered: Ordered[Sequence]) -> None:
        self.mode = mode
        self.profile = profile
        lead = next((s.step_group for s in ordered if has_real_work(s)), None)
        self.groups: set[str] = set() if lead is None else {lead}

    def admits(self, seq: Sequence, num_tokens: int) -> bool:
        """Whether ``seq``'s ``num_tokens`` may join; joining makes its query one of the
        step's queries (call ``join`` once they are in the plan)."""
        if self.mode == "on" or not self.groups:
            return True
        num_others = len(self.groups - {seq.step_group})
        if num_others == 0:
            return True
        if self.mode == "off":
            return False
        added_s = num_others * self.profile.marginal_step_s(1, num_tokens)
        return added_s < self.profile.step_base_s

    def join(self, seq: Sequence) -> None:
        self.groups.add(seq.step_group)


def has_real_work(seq: Sequence) -> bool:
    if seq.is_prefilling:
        return seq.is_prompt_closed
    return seq.is_generating and seq.num_pending > 0


def oldest_query_start_s(seqs: Iterable[Sequence]) -> float | None:
    """When the oldest query with real work among ``seqs`` was submitted (None: none, or
    their clients did not say), for the core budget's oldest-query-first rule."""
    starts = [s.query_start_s for s in seqs if s.query_start_s is not None and has_real_work(s)]
    return min(starts, default=None)
