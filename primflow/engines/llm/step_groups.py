"""Which queries' work may share one LLM step (``max_num_queries_per_step``).

On a compute-bound engine every token in a step delays the whole step, so filling it
with newer queries' work turns the engine into processor sharing: under load every
query then ends late (docs/end-to-end.md: naive_rag at 0.5 q/s, mean 12.3 -> 7.7 s
with one query per step). Invariants: the queries chosen are the oldest (in the
scheduler's order) that have real work, i.e. a closed prompt to prefill or a token to
decode; speculative work (open prompts) never earns a query a place. Requests whose
client did not say when their query started share one group (``Sequence.step_group``),
so query-unaware clients keep plain continuous batching.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from collections.abc import Sequence as Ordered

from primflow.engines.llm.sequence import Sequence


class _Everything:
    """The set of every group (no per-step query limit)."""

    def __contains__(self, group: object) -> bool:
        return True


EVERYTHING = _Everything()


def queries_this_step(ordered: Ordered[Sequence], max_num_queries: int | None) -> Container[str]:
    """The step groups of the oldest ``max_num_queries`` queries with real work, from
    ``ordered`` (most urgent first); every group when ``max_num_queries`` is None."""
    if max_num_queries is None:
        return EVERYTHING
    allowed: list[str] = []
    for seq in ordered:
        if len(allowed) >= max_num_queries:
            break
        if seq.step_group not in allowed and has_real_work(seq):
            allowed.append(seq.step_group)
    return set(allowed)


def has_real_work(seq: Sequence) -> bool:
    if seq.is_prefilling:
        return seq.is_prompt_closed
    return seq.is_generating and seq.num_pending > 0


def oldest_query_start_s(seqs: Iterable[Sequence]) -> float | None:
    """When the oldest query with real work among ``seqs`` was submitted (None: none, or
    their clients did not say), for the core budget's oldest-query-first rule."""
    starts = [s.query_start_s for s in seqs if s.query_start_s is not None and has_real_work(s)]
    return min(starts, default=None)
