"""Ablation settings: primflow with some passes off and a chosen batching policy.

The paper's graph-optimization ablation (§7) groups the passes: *parallelization* =
dependency pruning + prefill split, *pipelining* = stage decomposition + decode
pipelining. Each setting here names the passes it keeps; the batching policy is one of
the engine scheduler's (fifo, topology, critical_path). The policy orders every engine's
work, the LLM's steps included: each request names its engine scheduler's policy and
the LLM's step planner orders its steps by it (engines/llm/step_order.py), so the
``policy_*`` settings change which LLM work runs first, not only when it is handed over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from primflow.engines.policies import POLICIES
from primflow.engines.profile import LatencyProfile
from primflow.passes import GraphPass, default_passes

ALL_PASSES = ("prune_dependencies", "decompose_stages", "split_prefill", "pipeline_decode")


@dataclass(frozen=True, slots=True)
class Ablation:
    name: str
    passes: tuple[str, ...] = ALL_PASSES
    policy: str = "critical_path"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.passes) - set(ALL_PASSES))
        if unknown:
            raise ValueError(f"ablation {self.name!r}: unknown passes {unknown} ({ALL_PASSES})")
        if self.policy not in POLICIES:
            known = ", ".join(POLICIES)
            raise ValueError(f"ablation {self.name!r}: unknown policy {self.policy!r} ({known})")


ABLATIONS: dict[str, Ablation] = {
    a.name: a
    for a in (
        Ablation("full"),
        Ablation("no_passes", passes=()),
        Ablation("parallelization_only", passes=("prune_dependencies", "split_prefill")),
        Ablation("pipelining_only", passes=("decompose_stages", "pipeline_decode")),
        *(
            Ablation(f"without_{name}", passes=tuple(p for p in ALL_PASSES if p != name))
            for name in ALL_PASSES
        ),
        Ablation("policy_fifo", policy="fifo"),
        Ablation("policy_topology", policy="topology"),
    )
}


def passes_named(
    names: Iterable[str], profiles: Mapping[str, LatencyProfile] | None = None
) -> list[GraphPass]:
    """The default pipeline restricted to ``names``, in the default order."""
    wanted = set(names)
    unknown = sorted(wanted - set(ALL_PASSES))
    if unknown:
        raise ValueError(f"unknown passes {unknown}; known: {', '.join(ALL_PASSES)}")
    return [p for p in default_passes(profiles) if p.name in wanted]
