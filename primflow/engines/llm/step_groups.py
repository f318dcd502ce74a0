"""Which queries' work may share one LLM step: cross-query batching by step cost.

Each query is a *step group* (``Sequence.step_group``). The first query in the step
order with real work (a closed prompt to prefill or a token to decode) leads the step;
whether another query's work joins it is ``cross_query_batching``'s call:

- ``"cost"`` (the engine default): work of another query joins when the engine's
  step-cost profile (engines/profile.py: ``step_s = base + per_seq * seqs + per_token *
  tokens``) predicts that it saves the queries more waiting than it adds
  (:func:`joining_pays`). Joining adds ``marginal_step_s(work)`` to the step, for each
  of the ``num_in_step`` queries already in it. Not joining makes the work wait for a
  step of its own, whose fixed cost ``step_base_s`` delays the work's own query and
  every query waiting behind it (``num_waiting``: other queries with real work that are
  not in the step): the saving is ``step_base_s * (1 + num_waiting)`` per step shared.
  A prompt chunk that joins also lets its sequence decode alongside the step's queries
  sooner: each of the decode steps they still have ahead (``num_shared_decodes``) saves
  that much again, less what the joined decode token adds. So decodes share steps when
  a step's fixed cost outweighs a token's (or queries queue behind the step), a prompt
  chunk joins when its own cost is paid back by the decode steps it then shares, and on
  a compute-bound profile (``step_base_s`` near 0) nothing joins.
- ``"off"``: only the leading query's real work (the earlier fixed one query per step).
- ``"on"``: every query's work (plain continuous batching).

The rule compares total waiting (the sum of the queries' latencies) with every engine
step as a serial resource: it is exact for two decodes under a linear step cost (see
docs/results/llm-scheduling.md) and greedy otherwise.

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
        working = [s for s in ordered if has_real_work(s)]
        self.groups: set[str] = set() if not working else {working[0].step_group}
        self._working_groups = {s.step_group for s in working}
        # Decode steps the step's queries still have ahead (a joining prompt shares them).
        self._num_decodes_ahead = max(
            (num_decodes_left(s) for s in working if s.step_group in self.groups), default=0
        )

    def admits(self, seq: Sequence, num_tokens: int) -> bool:
        """Whether ``seq``'s ``num_tokens`` may join; joining makes its query one of the
        step's queries (call ``join`` once they are in the plan)."""
        if self.mode == "on" or not self.groups:
            return True
        num_in_step = len(self.groups - {seq.step_group})
        if num_in_step == 0:
            return True
        if self.mode == "off":
            return False
        num_waiting = len(self._working_groups - self.groups - {seq.step_group})
        num_shared_decodes = 0
        if seq.is_prefilling:
            num_shared_decodes = min(self._num_decodes_ahead, num_decodes_left(seq))
        return joining_pays(self.profile, num_in_step, num_waiting, num_tokens, num_shared_decodes)

    def join(self, seq: Sequence) -> None:
        self.groups.add(seq.step_group)
        self._num_decodes_ahead = max(self._num_decodes_ahead, num_decodes_left(seq))


def joining_pays(
    profile: LatencyProfile,
    num_in_step: int,
    num_waiting: int,
    num_tokens: int,
    num_shared_decodes: int = 0,
) -> bool:
    """Whether one sequence's ``num_tokens`` joining a step of ``num_in_step`` other
    queries saves more waiting than it adds (see the module docstring).

    Added: ``num_in_step * marginal_step_s(1, num_tokens)``. Saved: ``step_base_s`` for
    its own query and each of the ``num_waiting`` queries behind, plus, for a prompt
    chunk, that saving less a decode token's added time in each of the
    ``num_shared_decodes`` decode steps the sequence then shares.
    """
    saved_per_step_s = profile.step_base_s * (1 + num_waiting)
    added_s = num_in_step * profile.marginal_step_s(1, num_tokens)
    decode_gain_s = saved_per_step_s - num_in_step * profile.marginal_step_s(1, 1)
    return added_s < saved_per_step_s + num_shared_decodes * max(decode_gain_s, 0.0)


def num_decodes_left(seq: Sequence) -> int:
    """Tokens ``seq`` may still generate, as far as its decode phase has said (0 before)."""
    if seq.max_new_tokens is None:
        return 0
    return max(seq.max_new_tokens - max(seq.num_generated, 0), 0)


def has_real_work(seq: Sequence) -> bool:
    if seq.is_prefilling:
        return seq.is_prompt_closed
    return seq.is_generating and seq.num_pending > 0


def oldest_query_start_s(seqs: Iterable[Sequence]) -> float | None:
    """When the oldest query with real work among ``seqs`` was submitted (None: none, or
    their clients did not say), for the core budget's oldest-query-first rule."""
    starts = [s.query_start_s for s in seqs if s.query_start_s is not None and has_real_work(s)]
    return min(starts, default=None)
