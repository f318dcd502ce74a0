"""The runtime's static side: engine instances checked and named, graph plans built
and cached, nodes checked against the engines that must run them.

Invariants: a plan is built for a graph only after every engine node of it was checked
(its engine exists and runs its op); plans of submitted graphs are cached by the
identities of their frozen nodes and edges (``PlanCache``), plans of graphs grown while
their query runs never are (each is unique to its query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from primflow.engines.base import OPS_BY_KIND, Engine
from primflow.engines.policies import POLICIES
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import INLINE_OPS, Graph, Node, Op
from primflow.runtime.plan import GraphPlan, PlanCache, estimate_cost_s


class GraphPlanner:
    """Builds (and caches) the plans of the graphs a runtime runs."""

    def __init__(
        self,
        instances: Mapping[str, Sequence[Engine]],
        profiles: Mapping[str, LatencyProfile],
        max_num_cached_plans: int,
    ) -> None:
        self.instances = instances
        self.profiles = profiles
        self._plans = PlanCache(max_num_cached_plans)

    @property
    def num_builds(self) -> int:
        return self._plans.num_builds

    def plan(self, graph: Graph, inputs: Mapping[str, Any]) -> GraphPlan:
        """The (cached) plan of a submitted graph; its inputs must all be given."""
        key, edges = self._plans.key(graph)
        plan = self._plans.get(key)
        if plan is None:
            self._check_engines(graph)
            plan = GraphPlan(graph, self.cost_s)
            self._plans.put(key, plan, edges)
        missing = [name for name in plan.input_keys if name not in inputs]
        if missing:
            raise ValueError(f"query inputs lack {', '.join(map(repr, missing))}")
        return plan

    def grown_plan(self, graph: Graph) -> GraphPlan:
        """The plan of a graph grown during its query: checked, never cached."""
        self._check_engines(graph)
        return GraphPlan(graph, self.cost_s)

    def cost_s(self, node: Node) -> float:
        profile = self.profiles.get(node.engine) if node.engine else None
        return estimate_cost_s(node, profile)

    def _check_engines(self, graph: Graph) -> None:
        for node in graph:
            if node.op not in INLINE_OPS:
                self._check_engine(node.name, node.op, node.engine)

    def _check_engine(self, node: str, op: Op, engine: str | None) -> None:
        if engine is None or engine not in self.instances:
            known = ", ".join(self.instances)
            raise ValueError(f"node {node!r} runs on engine {engine!r}, not one of: {known}")
        kind = self.instances[engine][0].kind
        if op not in OPS_BY_KIND[kind]:
            raise ValueError(f"node {node!r} ({op}) cannot run on engine {engine!r} ({kind})")


def as_instances(name: str, engines: Engine | Sequence[Engine]) -> list[Engine]:
    instances = [engines] if isinstance(engines, Engine) else list(engines)
    if not instances:
        raise ValueError(f"engine {name!r} has no instances")
    kinds = {instance.kind for instance in instances}
    if len(kinds) > 1:
        raise ValueError(f"engine {name!r} mixes instance kinds: {sorted(kinds)}")
    return instances


def policy_for(name: str, policy: str | Mapping[str, str]) -> str:
    chosen = policy if isinstance(policy, str) else policy.get(name, "critical_path")
    if chosen not in POLICIES:
        known = ", ".join(POLICIES)
        raise ValueError(f"engine {name!r}: unknown batching policy {chosen!r} (known: {known})")
    return chosen
