"""The order in which the LLM step planner takes sequences' work into a step.

The order is the batching policy's (engines/policies.py: fifo, topology, critical_path),
the same definition the engine schedulers use for their queues: each live sequence is
handed to :func:`~primflow.engines.policies.policy_order` as a request carrying its
latest phase's metadata (query id, query start, priority, depth, arrival), and the
policy's batch order is the step order. Invariants:

- The policy is the one the sequences' engine scheduler runs (``Sequence.policy``, from
  ``EngineRequest.policy``). When live sequences name different policies (clients with
  different policies share the engine at the same moment) or none (a client without an
  engine scheduler), the engine's own ``default_policy`` orders them all: one order
  per step, never a mix of two.
- Pure and deterministic: the order depends only on the sequences' metadata and their
  creation order (``Sequence.order`` breaks arrival ties), not on the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as Ordered

from primflow.engines.base import EngineRequest
from primflow.engines.llm.sequence import Sequence
from primflow.engines.policies import POLICIES, policy_order
from primflow.graph.ir import Op

DEFAULT_POLICY = "critical_path"


def check_policy(name: str) -> str:
    if name not in POLICIES:
        raise ValueError(f"unknown batching policy {name!r} (known: {', '.join(POLICIES)})")
    return name


def step_policy(seqs: Iterable[Sequence], default_policy: str) -> str:
    """The policy that orders a step of ``seqs`` (see the module docstring)."""
    named = {s.policy for s in seqs}
    if len(named) == 1:
        (only,) = named
        if only is not None and only in POLICIES:
            return only
    return default_policy


def ordered(seqs: Ordered[Sequence], default_policy: str = DEFAULT_POLICY) -> list[Sequence]:
    """``seqs`` most urgent first, in the order of their batching policy."""
    if len(seqs) < 2:
        return list(seqs)
    by_ticket = {_ticket(s): s for s in sorted(seqs, key=lambda s: s.order)}
    chosen = step_policy(seqs, default_policy)
    return [by_ticket[ticket] for ticket in policy_order(chosen, by_ticket)]


def _ticket(seq: Sequence) -> EngineRequest:
    """The request a policy sees for ``seq``: its metadata, no inputs."""
    return EngineRequest(
        seq.query_id,
        seq.request_id,
        Op.LLM_PREFILL if seq.is_prefilling else Op.LLM_DECODE,
        {},
        {},
        depth=seq.depth,
        priority=seq.priority,
        query_start_s=seq.query_start_s,
        query_priority=seq.query_priority,
        arrival_s=seq.arrival_s,
    )
