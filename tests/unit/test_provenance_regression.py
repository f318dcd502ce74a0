"""The plan and the solo bound of every built-in app did not change when they moved from
parsing node names to reading provenance.

``tests/golden/plan_and_bound.json`` was written by :func:`snapshot` running on the
code *before* that change (commit 0b327f7, which mapped ``.s<i>`` / ``.p<i>`` /
``.partial`` / ``~<n>`` names back by regex), on fixed fake timings: p-graph node i
ran alone in ``1 + i / 2`` s, every e-graph engine node measured 9 s (contended, so the
bound must not use it), the split prefills' phases saw ``10 (k + 1)`` prompt tokens.
Both the CPU defaults and the GPU preset are covered: only the GPU preset decomposes a
batch into stages (advanced RAG's document embedding), so its ranks test the stage-aware
rank. Regenerate only for an intended change: ``PRIMFLOW_UPDATE_GOLDEN=1 pytest <this>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.graph.ir import INLINE_OPS, Node, Op
from primflow.passes import optimize
from primflow.runtime.plan import GraphPlan, estimate_cost_s
from primflow.session.solo_bound import solo_bound
from primflow.sim.profiles import preset

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan_and_bound.json"
IS_UPDATING = os.environ.get("PRIMFLOW_UPDATE_GOLDEN") == "1"
PRESETS = ("cpu", "gpu")
# The apps the snapshot was taken of (apps added since never parsed names).
SNAPSHOT_APPS = ("advanced_rag", "contextual_retrieval", "naive_rag", "search_augmented")


def _case(preset_name: str, app_name: str) -> dict[str, Any]:
    profiles = preset(preset_name)
    app = APPS[app_name]
    pgraph = lower_query(app.template(), app.sample_query()).graph
    egraph, _ = optimize(pgraph, profiles)
    engine_nodes = [n for n in pgraph if n.op not in INLINE_OPS]
    reference_s = {n.name: 1.0 + 0.5 * i for i, n in enumerate(engine_nodes)}
    measured_s = {n.name: 9.0 for n in egraph if n.op not in INLINE_OPS}
    phases = [n.name for n in egraph if n.op in (Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL)]
    num_tokens = {name: 10 * (k + 1) for k, name in enumerate(phases)}
    bound = solo_bound(egraph, egraph, pgraph, reference_s, measured_s, num_tokens)

    def cost_s(node: Node) -> float:
        return estimate_cost_s(node, profiles.get(node.engine) if node.engine else None)

    plan = GraphPlan(egraph, cost_s)
    return {
        "solo_s": bound.solo_s,
        "num_unmatched": bound.num_unmatched,
        "bound_s": bound.bound_s,
        "bound_path": bound.path,
        "ranks": plan.base_ranks,
        "next_stage": {n: p.next_stage for n, p in plan.nodes.items() if p.next_stage},
    }


def snapshot() -> dict[str, Any]:
    return {f"{p}/{a}": _case(p, a) for p in PRESETS for a in SNAPSHOT_APPS}


def _approx(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-12)
    return value


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if IS_UPDATING:
        GOLDEN.write_text(json.dumps(snapshot(), indent=1, sort_keys=True) + "\n")
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


@pytest.mark.parametrize("preset_name", PRESETS)
@pytest.mark.parametrize("app_name", SNAPSHOT_APPS)
def test_plan_and_bound_match_the_name_parsing_code(
    golden: dict[str, Any], preset_name: str, app_name: str
) -> None:
    assert _case(preset_name, app_name) == _approx(golden[f"{preset_name}/{app_name}"])


def test_the_golden_covers_stage_chains_and_split_work(golden: dict[str, Any]) -> None:
    # Guards the test above against a snapshot in which nothing was rewritten.
    assert golden["gpu/advanced_rag"]["next_stage"]
    solo = golden["cpu/advanced_rag"]["solo_s"]
    assert solo["expand.decode.p0"] == pytest.approx(solo["expand.decode.p1"])
    assert all(case["num_unmatched"] == 0 for case in golden.values())
