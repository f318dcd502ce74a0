"""The simulator runs apps whose graphs grow while a query runs (loops, agents): each
query gets its own growth, rounds are appended on the fake judge's decision, and the
module-level baselines run them round after round."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from primflow.apps import APPS, App, multi_hop_rag
from primflow.sim.profiles import preset
from primflow.sim.simulator import SimConfig, SimResult, simulate
from primflow.sim.workload import app_workload

FIRST_CHECK = "hops.r1.enough.decode"  # the judge after the first retrieval
# multi_hop_rag with its judge asked from round 1 (the default's first hop is unchecked).
CHECKED = dataclasses.replace(
    APPS["multi_hop_rag"],
    name="multi_hop_rag_checked",
    build=functools.partial(multi_hop_rag.build, min_hops=1),
)


def _run(app: App | str, scheme: str, baselines: str = "graph", **config: object) -> SimResult:
    workload = app_workload(app, scheme, preset("gpu"), baselines=baselines)
    return simulate(workload, SimConfig(rate_qps=1.0, duration_s=8.0, **config))  # type: ignore[arg-type]


def test_a_looping_app_knows_the_engines_of_every_round() -> None:
    # The first graph holds the judge only; the reformulating LLM comes with round 2.
    assert "llm" in app_workload("multi_hop_rag", "primflow", preset("gpu")).kinds
    assert "web_search" in app_workload("tool_agent", "primflow", preset("gpu")).kinds


@pytest.mark.parametrize(
    ("scheme", "baselines"), [("primflow", "graph"), ("sequential", "modules")]
)
def test_the_judges_decision_decides_how_many_rounds_a_query_grows(
    scheme: str, baselines: str
) -> None:
    enough = _run(CHECKED, scheme, baselines, llm_decisions={FIRST_CHECK: "yes"})
    another_hop = _run(CHECKED, scheme, baselines, llm_decisions={FIRST_CHECK: "no"})
    assert enough.queries and all(q.error is None for q in enough.queries + another_hop.queries)
    assert {q.num_rounds for q in enough.queries} == {1}
    assert {q.num_rounds for q in another_hop.queries} == {2}
    assert another_hop.stats.mean_s > enough.stats.mean_s  # the hop's work is simulated


def test_an_agent_simulates_the_same_way_twice_on_every_scheme() -> None:
    for scheme in ("primflow", "parallel", "sequential"):
        first, again = _run("tool_agent", scheme), _run("tool_agent", scheme)
        assert all(q.error is None for q in first.queries)
        assert [q.latency_s for q in first.queries] == [q.latency_s for q in again.queries]
        assert all(q.num_rounds >= 1 for q in first.queries)
