"""The pass pipeline: fixpoint, error naming, lint between passes, cache, report."""

from __future__ import annotations

import pytest
from graphs import advanced_rag_graph, indexing_graph, naive_rag_graph

from primflow.api.lower import lower
from primflow.apps import APPS
from primflow.engines.profile import DEFAULT_PROFILES, LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Edge, EdgeKind, Graph, Node, Op
from primflow.graph.lint import check_same_dependencies, lint
from primflow.passes.pipeline import (
    GraphCache,
    GraphPass,
    Optimizer,
    PassError,
    default_passes,
    graph_shape_key,
    optimize,
)

PASS_NAMES = ["prune_dependencies", "decompose_stages", "split_prefill", "pipeline_decode"]
# Stage decomposition splits only when pipelining pays; with a vector index as slow per
# item as the embedder it does (the CPU defaults' index is too cheap to hide anything).
SPLITTING = {
    "embedder": DEFAULT_PROFILES["embedder"],
    "vectors": LatencyProfile(base_s=0.0005, per_item_s=0.012, efficient_batch_size=128),
}


def test_default_order_and_full_rewrite_of_advanced_rag() -> None:
    assert [p.name for p in default_passes()] == PASS_NAMES
    graph = advanced_rag_graph(200)
    result, report = optimize(graph, SPLITTING, lint_each=True)
    lint(result)
    assert report.is_fixpoint and report.num_rounds == 2
    assert report.changed_by == PASS_NAMES
    assert set(report.pass_s) == set(PASS_NAMES)
    assert all(seconds >= 0 for seconds in report.pass_s.values())
    assert report.total_s >= sum(report.pass_s.values())
    ops_used = {n.op for n in result}
    assert {Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL, Op.LLM_PARTIAL_DECODE} <= ops_used
    assert not any(e.kind is EdgeKind.ORDER for e in result.edges)
    assert graph == advanced_rag_graph(200)  # the input is untouched
    assert report.summary().startswith("optimized in ")
    assert "2 rounds (prune_dependencies " in report.summary()


def test_optimized_graph_is_a_fixpoint() -> None:
    result, _ = optimize(advanced_rag_graph(200))
    again, report = optimize(result)
    assert again == result
    assert report.changed_by == [] and report.num_rounds == 1


def test_round_limit_stops_a_pass_that_never_settles() -> None:
    def grow(graph: Graph) -> Graph:
        grown = graph.copy()
        grown.add_node(Node(f"extra{len(graph)}", Op.INPUT))
        return grown

    optimizer = Optimizer(passes=[GraphPass("grow", grow)], max_rounds=3)
    result, report = optimizer.optimize(indexing_graph(4))
    assert report.num_rounds == 3 and not report.is_fixpoint
    assert len(result) == len(indexing_graph(4)) + 3


def test_failing_pass_is_named_with_the_passes_before_it() -> None:
    def explode(graph: Graph) -> Graph:
        raise KeyError("boom")

    passes = [*default_passes()[:2], GraphPass("explode", explode)]
    with pytest.raises(PassError) as info:
        optimize(naive_rag_graph(10), passes=passes)
    assert info.value.pass_name == "explode"
    assert info.value.passes_before == ["prune_dependencies", "decompose_stages"]
    assert "'explode' failed (passes run before it: prune_dependencies, decompose_stages)" in str(
        info.value
    )
    assert "KeyError" in str(info.value)


def drop_question_edge(graph: Graph) -> Graph:
    broken = graph.copy()
    edge = Edge("question", "answer_prefill", ops.VALUE, "question")
    if edge in broken.edges:
        broken.remove_edge(edge)
    return broken


def test_lint_between_passes_names_the_pass_that_broke_the_graph() -> None:
    passes = [default_passes()[0], GraphPass("drop_edge", drop_question_edge)]
    with pytest.raises(PassError, match=r"'drop_edge' failed .* produced a bad graph") as info:
        optimize(naive_rag_graph(10), passes=passes, lint_each=True)
    assert "answer_prefill.question has no incoming edge" in str(info.value)
    # Without lint the broken graph goes through: lint_each is what catches it.
    result, _ = optimize(naive_rag_graph(10), passes=passes)
    assert result.in_edges("answer_prefill") != naive_rag_graph(10).in_edges("answer_prefill")


def test_custom_pass_runs_in_its_slot() -> None:
    seen: list[int] = []

    def count_nodes(graph: Graph) -> Graph:
        seen.append(len(graph))
        return graph.copy()

    passes = default_passes(SPLITTING)
    passes.insert(2, GraphPass("count", count_nodes))
    optimize(indexing_graph(100), passes=passes)
    # After decomposition (4 stages of 25): chunks, 4 embeds, 4 ingests, join, output.
    assert seen[0] == 11


def test_cache_hits_for_the_same_shape_and_misses_for_another() -> None:
    cache = GraphCache()
    first, report = optimize(advanced_rag_graph(200), cache=cache, template_id="adv")
    assert not report.is_cache_hit
    second, report = optimize(advanced_rag_graph(200), cache=cache, template_id="adv")
    assert report.is_cache_hit and report.pass_s == {}
    assert "from cache" in report.summary()
    assert second == first
    _, report = optimize(advanced_rag_graph(201), cache=cache, template_id="adv")
    assert not report.is_cache_hit
    _, report = optimize(advanced_rag_graph(200), cache=cache, template_id="other")
    assert not report.is_cache_hit
    assert (cache.num_hits, cache.num_misses, len(cache)) == (1, 3, 3)


def test_cache_returns_independent_copies() -> None:
    cache = GraphCache()
    first, _ = optimize(indexing_graph(100), cache=cache)
    first.remove_node("index")
    second, _ = optimize(indexing_graph(100), cache=cache)
    assert "index" in second


def test_caller_supplied_shape_key_and_lru_eviction() -> None:
    cache = GraphCache(max_entries=1)
    optimizer = Optimizer(cache=cache)
    optimizer.optimize(indexing_graph(100), template_id="t", shape_key=("n", 100))
    _, report = optimizer.optimize(indexing_graph(100), template_id="t", shape_key=("n", 100))
    assert report.is_cache_hit
    optimizer.optimize(indexing_graph(50), template_id="t", shape_key=("n", 50))
    _, report = optimizer.optimize(indexing_graph(100), template_id="t", shape_key=("n", 100))
    assert not report.is_cache_hit


def test_shape_key_tracks_sizes_and_structure() -> None:
    assert graph_shape_key(naive_rag_graph(10)) == graph_shape_key(naive_rag_graph(10))
    assert graph_shape_key(naive_rag_graph(10)) != graph_shape_key(naive_rag_graph(11))
    unordered = naive_rag_graph(10, with_order=False)
    assert graph_shape_key(naive_rag_graph(10)) != graph_shape_key(unordered)
    hash(graph_shape_key(advanced_rag_graph(10)))


def test_profiles_reach_stage_decomposition() -> None:
    profiles = {
        **SPLITTING,
        "embedder": SPLITTING["embedder"].with_changes(efficient_batch_size=10),
    }
    result, _ = optimize(indexing_graph(100), profiles)
    assert len(result.nodes_with_op(Op.EMBED)) == 10
    # Without the costly index (CPU defaults) pipelining does not pay: one batch.
    result, _ = optimize(indexing_graph(100))
    assert len(result.nodes_with_op(Op.EMBED)) == 1


@pytest.mark.parametrize("app_name", sorted(APPS))
def test_lowered_sample_apps_optimize_cleanly(app_name: str) -> None:
    """The passes on real lowered graphs: lint holds between passes, outputs keep
    their inputs, and each app gets at least one rewrite."""
    app = APPS[app_name]
    graph = lower(app.template(), app.sample_query())
    lint(graph)
    result, report = optimize(graph, lint_each=True)
    assert report.is_fixpoint and report.changed_by
    check_same_dependencies(graph, result)
