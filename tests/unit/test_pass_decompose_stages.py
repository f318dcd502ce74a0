"""decompose_stages: big batches become pipelined stages sized by the engine profile."""

from __future__ import annotations

from graphs import GraphBuilder, advanced_rag_graph, indexing_graph

from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Edge, Op, Port, PortType
from primflow.graph.lint import check_same_dependencies, lint
from primflow.passes.decompose_stages import decompose_stages, stage_ranges

EMBED_128 = {"embedder": LatencyProfile(efficient_batch_size=128)}


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
    small = decompose_stages(
        indexing_graph(100), {"embedder": LatencyProfile(efficient_batch_size=50)}
    )
    assert len(small.nodes_with_op(Op.EMBED)) == 2
    # Without a measured profile the embedder kind's default (32) applies: 100 -> 4 x 25.
    default = decompose_stages(indexing_graph(100))
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
    assert decompose_stages(b.graph) == b.graph


def test_chain_pipelines_through_search_into_rerank_and_joins_top_k() -> None:
    b = GraphBuilder()
    b.input("queries", PortType.TEXTS, 64)
    b.input("question", PortType.TEXT)
    b.input("index", PortType.INDEX)
    b.embed("embed", ("queries", ops.VALUE), 64, PortType.TEXTS)
    b.search("search", ("embed", ops.VECTORS), ("index", ops.VALUE), 64, top_k=2)
    b.rerank("rerank", ("question", ops.VALUE), ("search", ops.HITS), 128, top_k=5)
    b.output("hits", ("rerank", ops.HITS))
    result = decompose_stages(b.graph, {"embedder": LatencyProfile(efficient_batch_size=32)})
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
    once = decompose_stages(indexing_graph(666))
    assert decompose_stages(once) == once


def test_existing_select_is_composed() -> None:
    graph = indexing_graph(100)
    for edge in graph.in_edges("embed_docs") + graph.in_edges("ingest"):
        if edge.src == "chunks":
            graph.remove_edge(edge)
            graph.connect("chunks", ops.VALUE, edge.dst, edge.dst_port, select=(100, 200))
    chunks = graph.node("chunks")
    graph.replace_node(chunks.replace(outputs=(Port(ops.VALUE, PortType.CHUNKS, 300),)))
    result = decompose_stages(graph, {"embedder": LatencyProfile(efficient_batch_size=50)})
    lint(result)
    assert result.in_edges("embed_docs.s1")[0].select == (150, 200)


def test_stage_ranges_cover_every_item_once() -> None:
    assert stage_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_advanced_rag_only_splits_the_document_side() -> None:
    graph = advanced_rag_graph(200)
    result = decompose_stages(graph)
    lint(result)
    assert "embed_queries" in result and "ingest.join" in result
    assert result.parents("search") == ["embed_queries", "ingest.join"]
