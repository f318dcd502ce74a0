"""pipeline_decode: each parsed item flows downstream while the decode continues."""

from __future__ import annotations

from graphs import GraphBuilder, advanced_rag_graph

from primflow.graph import ops
from primflow.graph.ir import Edge, Op, PortType
from primflow.graph.lint import check_same_dependencies, lint
from primflow.passes.pipeline_decode import pipeline_decode


def test_expansion_decode_becomes_a_chain_of_per_item_pipelines() -> None:
    graph = advanced_rag_graph(20, num_queries=3)
    result = pipeline_decode(graph)
    lint(result)
    check_same_dependencies(graph, result)
    partials = result.nodes_with_op(Op.LLM_PARTIAL_DECODE)
    assert [n.name for n in partials] == [
        "expand_decode.p0",
        "expand_decode.p1",
        "expand_decode.p2",
    ]
    assert [n.params["index"] for n in partials] == [0, 1, 2]
    assert all(n.params["request"] == "expand" for n in partials)
    assert result.parents("expand_decode.p0") == ["expand_prefill"]
    assert result.in_edges("expand_decode.p2") == [
        Edge("expand_decode.p1", "expand_decode.p2", ops.STATE, ops.STATE)
    ]
    for i in range(3):
        assert result.parents(f"embed_queries.p{i}") == [f"expand_decode.p{i}"]
        assert result.node(f"embed_queries.p{i}").input(ops.ITEMS).num_items == 1
        assert result.parents(f"search.p{i}") == [f"embed_queries.p{i}", "ingest"]
        assert result.parents(f"rerank.p{i}") == ["question", f"search.p{i}"]
    join = result.node("rerank.join")
    assert dict(join.params) == {"mode": ops.AggregateMode.TOP_K, "top_k": 2}
    assert "rerank.join" in result.parents("answer_prefill")
    for gone in ("expand_decode", "embed_queries", "search", "rerank"):
        assert gone not in result


def test_decode_without_parser_is_left_alone() -> None:
    b = GraphBuilder()
    b.input("question", PortType.TEXT)
    b.prefill("p", "Q: {question}", {"question": ("question", ops.VALUE)})
    b.decode("d", ("p", ops.STATE))
    b.output("answer", ("d", ops.TEXT))
    assert pipeline_decode(b.graph) == b.graph


def test_decode_whose_text_is_read_is_left_alone() -> None:
    graph = advanced_rag_graph(20)
    GraphBuilder(graph).output("raw", ("expand_decode", ops.TEXT))
    assert pipeline_decode(graph) == graph


def test_items_read_by_a_non_batchable_node_get_a_concat() -> None:
    graph = advanced_rag_graph(20, num_queries=2)
    GraphBuilder(graph).output("queries", ("expand_decode", ops.ITEMS))
    result = pipeline_decode(graph)
    lint(result)
    check_same_dependencies(graph, result)
    concat = result.node("expand_decode.items")
    assert concat.params["mode"] == ops.AggregateMode.CONCAT
    assert result.parents("expand_decode.items") == ["expand_decode.p0", "expand_decode.p1"]
    assert result.parents("queries") == ["expand_decode.items"]


def test_items_without_batchable_reader_are_left_alone() -> None:
    b = GraphBuilder()
    b.input("question", PortType.TEXT)
    b.prefill("p", "Q: {question}", {"question": ("question", ops.VALUE)})
    b.decode("d", ("p", ops.STATE), num_items=3)
    b.output("queries", ("d", ops.ITEMS))
    assert pipeline_decode(b.graph) == b.graph


def test_second_run_changes_nothing() -> None:
    once = pipeline_decode(advanced_rag_graph(20))
    assert pipeline_decode(once) == once
