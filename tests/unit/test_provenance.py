"""Provenance in the IR: lowering and every pass record what each node derives from, and
the runtime's plan reads that record, never a node's name.

Covers: a user graph whose node names look like the passes' (``embed.s1``, ``llm~2``)
is planned exactly like the same graph with neutral names; the stages decompose_stages
makes keep their stage-aware rank under any names, and lose it without provenance;
every built-in app's e-graph has consistent provenance; a broken rewrite is reported.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import pytest
from graphs import indexing_graph
from runtime_graphs import Builder

from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Edge, Graph, Node, Op, PortType, Provenance, Stage
from primflow.graph.lint import LintError
from primflow.graph.lint_provenance import check_provenance, engine_shares
from primflow.graph.printers import to_json
from primflow.passes import decompose_stages, default_passes, optimize
from primflow.runtime.plan import GraphPlan, estimate_cost_s
from primflow.sim.profiles import GPU_PROFILES, preset

PASS_NAMES = {p.name for p in default_passes()}


def _renamed(graph: Graph, names: Mapping[str, str]) -> Graph:
    """``graph`` with every node renamed by ``names``; provenance is kept as is."""
    renamed = Graph(node.replace(name=names[node.name]) for node in graph)
    for e in graph.edges:
        renamed.add_edge(Edge(names[e.src], names[e.dst], e.src_port, e.dst_port, e.kind, e.select))
    return renamed


def _plan_shape(plan: GraphPlan, position: Mapping[str, int]) -> list[tuple[Any, ...]]:
    """Everything the plan decided per node, with nodes named by their position."""
    ranks = plan.ranks()
    shape = []
    for name, node_plan in plan.nodes.items():
        next_stage = node_plan.next_stage
        shape.append(
            (
                position[name],
                node_plan.depth,
                node_plan.num_deps,
                pytest.approx(node_plan.cost_s),
                pytest.approx(ranks[name]),
                position[next_stage] if next_stage is not None else None,
                sorted((position[c], relaxed) for c, relaxed in node_plan.children),
            )
        )
    return sorted(shape, key=lambda row: row[0])


def _same_plan_under_names(
    graph: Graph, names: Mapping[str, str], cost_s: Mapping[str, float]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The plan of ``graph`` and of its renamed copy (costs follow the nodes)."""
    position = {node.name: i for i, node in enumerate(graph)}
    renamed_position = {names[name]: i for name, i in position.items()}
    renamed_cost_s = {names[name]: cost for name, cost in cost_s.items()}
    plan = GraphPlan(graph, lambda n: cost_s.get(n.name, 0.0))
    renamed = GraphPlan(_renamed(graph, names), lambda n: renamed_cost_s.get(n.name, 0.0))
    return _plan_shape(plan, position), _plan_shape(renamed, renamed_position)


def _lookalike_graph() -> Graph:
    """A hand-built graph (no provenance) whose names mimic the passes' suffixes."""
    b = Builder()
    texts = b.input("texts", PortType.TEXTS)
    for i in range(3):
        b.output(f"out.s{i}", b.embed(f"embed.s{i}", texts))
    question = b.input("question")
    state = b.prefill("llm~2", "Q: {question}", {"question": question}, request="llm~2")
    b.output("answer", b.decode("llm~2.s1", state, request="llm~2"))
    return b.graph


def test_user_nodes_named_like_stages_are_planned_like_neutral_ones() -> None:
    graph = _lookalike_graph()
    cost_s = {"embed.s0": 1.0, "embed.s1": 1.0, "embed.s2": 0.5, "llm~2": 0.3, "llm~2.s1": 2.0}
    names = {node.name: f"node_{i}" for i, node in enumerate(graph)}
    looks_like_stages, neutral = _same_plan_under_names(graph, names, cost_s)
    assert looks_like_stages == neutral
    plan = GraphPlan(graph, lambda n: cost_s.get(n.name, 0.0))
    assert all(p.next_stage is None for p in plan.nodes.values())
    # Each embedding ranks by its own cost: none is taken for a stage of another.
    assert plan.ranks()["embed.s0"] == pytest.approx(1.0)


def _decomposed() -> tuple[Graph, dict[str, float]]:
    profiles = {"embedder": GPU_PROFILES["embedder"], "vectors": GPU_PROFILES["vector_index"]}
    graph = decompose_stages(indexing_graph(1000), profiles)
    cost_s = {n.name: estimate_cost_s(n, profiles.get(n.engine or "")) for n in graph}
    return graph, cost_s


def test_decomposed_stages_rank_the_stages_after_them_on_their_engine() -> None:
    graph, cost_s = _decomposed()
    plan = GraphPlan(graph, lambda n: cost_s[n.name])
    ranks = plan.ranks()
    embeds = sorted(
        graph.nodes_with_op(Op.EMBED),
        key=lambda n: n.provenance.stage.index if n.provenance.stage else -1,
    )
    assert len(embeds) == 8
    for stage, after in itertools.pairwise(embeds):
        assert plan.nodes[stage.name].next_stage == after.name
        assert ranks[stage.name] >= cost_s[stage.name] + ranks[after.name] - 1e-12
    # Stage 0 waits for every embedding stage: the batch's whole embedding time.
    assert ranks[embeds[0].name] >= sum(cost_s[n.name] for n in embeds) - 1e-12


def test_decomposed_stages_keep_their_rank_under_any_names() -> None:
    graph, cost_s = _decomposed()
    # Reversed numbering: a name suggests nothing, or the wrong order.
    names = {node.name: f"n{len(graph) - i}" for i, node in enumerate(graph)}
    original, renamed = _same_plan_under_names(graph, names, cost_s)
    assert original == renamed
    # Without provenance the same names get no stage links: provenance is what counts.
    bare = Graph(node.replace(provenance=Provenance()) for node in graph)
    for edge in graph.edges:
        bare.add_edge(edge)
    bare_plan = GraphPlan(bare, lambda n: cost_s[n.name])
    assert all(p.next_stage is None for p in bare_plan.nodes.values())


def _app_graphs(preset_name: str, app_name: str) -> tuple[Graph, Graph]:
    app = APPS[app_name]
    pgraph = lower_query(app.template(), app.sample_query()).graph
    profiles: dict[str, LatencyProfile] = preset(preset_name)
    egraph, _ = optimize(pgraph, profiles, lint_each=True)  # checks provenance per pass
    return pgraph, egraph


@pytest.mark.parametrize("preset_name", ["cpu", "gpu"])
@pytest.mark.parametrize("app_name", sorted(APPS))
def test_every_node_of_every_app_has_consistent_provenance(preset_name: str, app_name: str) -> None:
    pgraph, egraph = _app_graphs(preset_name, app_name)
    for node in pgraph:
        assert node.provenance == Provenance(node.name), node.name
    check_provenance(pgraph, egraph)
    for node in egraph:
        provenance = node.provenance
        assert provenance.source in pgraph, node.name
        assert provenance.pass_name is None or provenance.pass_name in PASS_NAMES, node.name
        if provenance.pass_name is None:  # untouched by the passes: the p-graph's node
            assert node == pgraph.node(node.name)
        else:
            assert node.name not in pgraph or node != pgraph.node(node.name)
    assert set(engine_shares(egraph).values()) <= {Fraction(1)}
    chains: dict[tuple[str, str], list[Stage]] = {}
    for node in egraph:
        if node.provenance.stage is not None:
            assert node.provenance.pass_name == "decompose_stages"
            chains.setdefault((node.source, node.provenance.stage.chain), []).append(
                node.provenance.stage
            )
    for stages in chains.values():
        assert sorted(s.index for s in stages) == list(range(stages[0].num_stages))


def test_the_apps_exercise_every_pass_that_makes_nodes() -> None:
    # Guards the test above against passes that change nothing.
    seen: set[str | None] = set()
    for preset_name in ("cpu", "gpu"):
        for app_name in APPS:
            seen |= {n.provenance.pass_name for n in _app_graphs(preset_name, app_name)[1]}
    assert seen == {None, "decompose_stages", "split_prefill", "pipeline_decode"}


def test_a_rewrite_that_breaks_provenance_is_reported() -> None:
    pgraph, egraph = _app_graphs("gpu", "advanced_rag")
    stages = [n for n in egraph.nodes_with_op(Op.EMBED) if n.provenance.stage is not None]
    broken = egraph.copy()
    broken.replace_node(stages[1].replace(provenance=stages[0].provenance))
    embed = next(n for n in egraph.nodes_with_op(Op.EMBED) if n.provenance.stage is None)
    broken.replace_node(embed.replace(provenance=Provenance("invented")))
    with pytest.raises(LintError) as caught:
        check_provenance(pgraph, broken)
    problems = "\n".join(caught.value.problems)
    assert "derives from 'invented'" in problems
    assert "indices [0, 0, 2" in problems
    assert f"from {embed.source!r} hold 0 of its work, 1 before" in problems


def test_json_printer_shows_provenance() -> None:
    _, egraph = _app_graphs("gpu", "advanced_rag")
    data = json.loads(json.dumps(to_json(egraph)))
    by_name = {n["name"]: n for n in data["nodes"]}
    stage = next(n for n in egraph if n.provenance.stage is not None)
    assert by_name[stage.name]["provenance"] == {
        "source": "embed_docs",
        "pass": "decompose_stages",
        "share": str(stage.provenance.share),
        "stage": {"chain": "embed_docs", "index": 0, "num_stages": 3},
    }
    assert by_name["input.question"]["provenance"] == {
        "source": "input.question",
        "pass": None,
        "share": "1",
    }


def test_a_node_without_provenance_stands_for_itself() -> None:
    node = Node("embed.s1", Op.EMBED, engine="embedder")
    assert node.source == "embed.s1"
    assert node.piece("decompose_stages", Fraction(1, 4)) == Provenance(
        "embed.s1", "decompose_stages", Fraction(1, 4)
    )
