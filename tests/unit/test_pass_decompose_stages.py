"""decompose_stages: big batches become pipelined stages sized by the engine profile,
only where the modelled pipeline clearly beats the whole batch."""

from __future__ import annotations

import pytest
from graphs import GraphBuilder, advanced_rag_graph, indexing_graph

from primflow.engines.profile import DEFAULT_PROFILES, LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Edge, Graph, Op, Port, PortType
from primflow.graph.lint import check_same_dependencies, lint
from primflow.passes.decompose_stages import (
    decompose_stages,
    pipelined_makespan_s,
    stage_ranges,
)
from primflow.sim.profiles import GPU_PROFILES

# A consumer as slow per item as the embedder: pipelining hides most of one behind the
# other, so the modelled gain is large and splitting pays.
COSTLY_INDEX = LatencyProfile(base_s=0.0005, per_item_s=0.012, efficient_batch_size=128)
# A consumer that costs nearly nothing per item: there is nothing to hide.
CHEAP_INDEX = LatencyProfile(base_s=0.0005, per_item_s=1e-7, efficient_batch_size=128)


def embedder(efficient_batch_size: int) -> LatencyProfile:
    return DEFAULT_PROFILES["embedder"].with_changes(efficient_batch_size=efficient_batch_size)


def costly(efficient_batch_size: int = 32) -> dict[str, LatencyProfile]:
    """Profiles (by the test graphs' engine names) under which splitting pays."""
    return {"embedder": embedder(efficient_batch_size), "vectors": COSTLY_INDEX}


def by_engine_name(preset: dict[str, LatencyProfile]) -> dict[str, LatencyProfile]:
    """A preset keyed by engine kind, under the test graphs' engine names."""
    return {**preset, "vectors": preset["vector_index"]}


def num_embeds(graph: Graph) -> int:
    return len(graph.nodes_with_op(Op.EMBED))


EMBED_128 = costly(128)


def test_embed_and_ingest_split_into_even_stages_joined_by_all() -> None:
    graph = indexing_graph(666)
    result = decompose_stages(graph, EMBED_128)
    lint(result)
    check_same_dependencies(graph, result)
    embeds = [n.name for n in result.nodes_with_op(Op.EMBED)]
    assert embeds == [f"embed_docs.s{i}" for i in range(6)]
    first = result.in_edges("embed_docs.s0")
    assert first == [Edge("chunks", "embed_docs.s0", ops.VALUE, ops.ITEMS, select=(0, 111))]
    assert result.node("embed_docs.s5").input(ops.ITEMS).num_items == 111
    ingest = result.node("ingest.s3")
    assert {(e.src, e.dst_port, e.select) for e in result.in_edges(ingest.name)} == {
        ("chunks", ops.CHUNKS, (333, 444)),
        ("embed_docs.s3", ops.VECTORS, None),
    }
    join = result.node("ingest.join")
    assert join.params["mode"] == ops.AggregateMode.ALL
    assert result.parents("ingest.join") == [f"ingest.s{i}" for i in range(6)]
    assert result.parents("index") == ["ingest.join"]
    assert "embed_docs" not in result and "ingest" not in result


def test_micro_batch_comes_from_the_profile() -> None:
    small = decompose_stages(indexing_graph(100), costly(50))
    assert num_embeds(small) == 2
    # Without a measured embedder profile its kind's default (32) applies: 100 -> 4 x 25.
    default = decompose_stages(indexing_graph(100), {"vectors": COSTLY_INDEX})
    sizes = [n.input(ops.ITEMS).num_items for n in default.nodes_with_op(Op.EMBED)]
    assert sizes == [25, 25, 25, 25]


def test_small_batch_is_left_alone() -> None:
    graph = indexing_graph(100)
    assert decompose_stages(graph, EMBED_128) == graph


def test_without_a_batchable_consumer_nothing_is_split() -> None:
    b = GraphBuilder()
    b.input("chunks", PortType.CHUNKS, 500)
    b.embed("embed", ("chunks", ops.VALUE), 500)
    b.output("vectors", ("embed", ops.VECTORS))
    assert decompose_stages(b.graph, costly(), min_gain_fraction=0) == b.graph


def test_chain_pipelines_through_search_into_rerank_and_joins_top_k() -> None:
    b = GraphBuilder()
    b.input("queries", PortType.TEXTS, 64)
    b.input("question", PortType.TEXT)
    b.input("index", PortType.INDEX)
    b.embed("embed", ("queries", ops.VALUE), 64, PortType.TEXTS)
    b.search("search", ("embed", ops.VECTORS), ("index", ops.VALUE), 64, top_k=2)
    b.rerank("rerank", ("question", ops.VALUE), ("search", ops.HITS), 128, top_k=5)
    b.output("hits", ("rerank", ops.HITS))
    # Search is cheap, but the reranker (12 ms per hit, 2 hits per query) is worth hiding.
    result = decompose_stages(b.graph, {"embedder": embedder(32)})
    lint(result)
    check_same_dependencies(b.graph, result)
    assert [n.name for n in result.nodes_with_op(Op.RERANK)] == ["rerank.s0", "rerank.s1"]
    assert result.node("search.s1").output(ops.HITS).num_items == 64
    assert result.node("rerank.s1").input(ops.HITS).num_items == 64
    # Non-item inputs reach every stage.
    for i in range(2):
        assert ("index", ops.INDEX) in {
            (e.src, e.dst_port) for e in result.in_edges(f"search.s{i}")
        }
        assert ("question", ops.QUERY) in {
            (e.src, e.dst_port) for e in result.in_edges(f"rerank.s{i}")
        }
    join = result.node("rerank.join")
    assert dict(join.params) == {"mode": ops.AggregateMode.TOP_K, "top_k": 5}
    assert join.output(ops.RESULT).num_items == 5


def test_second_run_changes_nothing() -> None:
    for profiles in (costly(), by_engine_name(GPU_PROFILES), DEFAULT_PROFILES):
        once = decompose_stages(indexing_graph(666), profiles)
        assert decompose_stages(once, profiles) == once
    assert num_embeds(decompose_stages(indexing_graph(666), costly())) > 1


def test_existing_select_is_composed() -> None:
    graph = indexing_graph(100)
    for edge in graph.in_edges("embed_docs") + graph.in_edges("ingest"):
        if edge.src == "chunks":
            graph.remove_edge(edge)
            graph.connect("chunks", ops.VALUE, edge.dst, edge.dst_port, select=(100, 200))
    chunks = graph.node("chunks")
    graph.replace_node(chunks.replace(outputs=(Port(ops.VALUE, PortType.CHUNKS, 300),)))
    result = decompose_stages(graph, costly(50))
    lint(result)
    assert result.in_edges("embed_docs.s1")[0].select == (150, 200)


def test_stage_ranges_cover_every_item_once() -> None:
    assert stage_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_advanced_rag_only_splits_the_document_side() -> None:
    graph = advanced_rag_graph(200)
    result = decompose_stages(graph, costly())
    lint(result)
    assert "embed_queries" in result and "ingest.join" in result
    assert result.parents("search") == ["embed_queries", "ingest.join"]


# -- the cost model: split only when the pipeline pays ---------------------------------


@pytest.mark.parametrize("num_chunks", [92, 282])
def test_cpu_defaults_leave_indexing_whole(num_chunks: int) -> None:
    # The balanced (92) and cold (282) workloads' chunk counts: the CPU vector index
    # ingests in ~0.2 ms per chunk, so pipelining into it saves ~1 % (< 10 %).
    graph = indexing_graph(num_chunks)
    assert decompose_stages(graph) is graph
    assert decompose_stages(graph, by_engine_name(DEFAULT_PROFILES)) is graph


def test_gpu_preset_splits_a_thousand_chunks() -> None:
    # embed 125 ms and ingest 64.5 ms per stage of 125: 1.105 s pipelined vs 1.507 s.
    result = decompose_stages(indexing_graph(1000), by_engine_name(GPU_PROFILES))
    lint(result)
    sizes = [n.input(ops.ITEMS).num_items for n in result.nodes_with_op(Op.EMBED)]
    assert sizes == [125] * 8
    assert len(result.nodes_with_op(Op.VECTOR_INGEST)) == 8


def test_min_gain_fraction_decides_with_a_costly_consumer() -> None:
    graph = indexing_graph(100)
    assert num_embeds(decompose_stages(graph, costly(), min_gain_fraction=0)) == 4
    # 4 stages of 25 model 1.51 s against 2.40 s whole (37 % gain): a 50 % bar is not met.
    assert decompose_stages(graph, costly(), min_gain_fraction=0.5) is graph


def test_cheap_consumer_is_not_worth_splitting_for() -> None:
    graph = indexing_graph(666)
    profiles = {"embedder": embedder(32), "vectors": CHEAP_INDEX}
    assert decompose_stages(graph, profiles, min_gain_fraction=0.001) is graph
    # Even with no bar at all: extra per-call costs make the stages slower, not faster.
    assert decompose_stages(graph, profiles, min_gain_fraction=0) is graph


def test_min_gain_fraction_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"min_gain_fraction must be in \[0, 1\), got 1.5"):
        decompose_stages(indexing_graph(10), min_gain_fraction=1.5)


def test_flow_shop_makespan_by_hand() -> None:
    # Link 0 (embed) takes 3, 2, 4 per stage; link 1 (ingest) takes 1, 5, 1.
    #   C[0] = 3, 5, 9
    #   C[1] = 3+1=4, max(5, 4)+5=10, max(9, 10)+1=11
    assert pipelined_makespan_s([[3.0, 2.0, 4.0], [1.0, 5.0, 1.0]]) == 11.0
    # One stage is the plain sum; one link is the plain sum of its stages.
    assert pipelined_makespan_s([[2.0], [3.0], [4.0]]) == 9.0
    assert pipelined_makespan_s([[1.0, 2.0, 3.0]]) == 6.0
    assert pipelined_makespan_s([]) == 0.0
