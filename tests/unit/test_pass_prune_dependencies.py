"""prune_dependencies: ORDER edges go, DATA edges stay, the input graph is untouched."""

from __future__ import annotations

from graphs import GraphBuilder, naive_rag_graph

from primflow.graph import ops
from primflow.graph.ir import Edge, EdgeKind, Node, Op, Port, PortType
from primflow.graph.lint import check_same_dependencies, lint
from primflow.passes.prune_dependencies import prune_dependencies


def test_order_edges_are_removed_and_data_edges_kept() -> None:
    graph = naive_rag_graph(10)
    pruned = prune_dependencies(graph)
    assert all(e.kind is EdgeKind.DATA for e in pruned.edges)
    assert set(pruned.edges) == {e for e in graph.edges if e.kind is EdgeKind.DATA}
    assert pruned.nodes == graph.nodes
    lint(pruned)
    check_same_dependencies(graph, pruned)


def test_independent_branches_become_parallel() -> None:
    graph = naive_rag_graph(10)
    assert "ingest" in graph.parents("embed_query")
    pruned = prune_dependencies(graph)
    assert pruned.parents("embed_query") == ["question"]
    assert pruned.parents("answer_prefill") == ["question", "search"]


def test_input_graph_is_unchanged() -> None:
    graph = naive_rag_graph(10)
    before = list(graph.edges)
    prune_dependencies(graph)
    assert graph.edges == before


def test_graph_without_order_edges_is_returned_equal() -> None:
    graph = naive_rag_graph(10, with_order=False)
    assert prune_dependencies(graph) == graph


def test_condition_gates_through_data_ports_so_its_order_edges_go_too() -> None:
    b = GraphBuilder()
    b.input("decision", PortType.TEXT)
    b.input("question", PortType.TEXT)
    condition = Node(
        "route",
        Op.CONDITION,
        inputs=(Port(ops.DECISION, PortType.TEXT), Port(ops.VALUE, PortType.TEXT)),
        outputs=(Port(ops.IF_TRUE, PortType.TEXT), Port(ops.IF_FALSE, PortType.TEXT)),
        params={"predicate": "yes"},
    )
    b.graph.add_node(condition)
    b.graph.connect("decision", ops.VALUE, "route", ops.DECISION)
    b.graph.connect("question", ops.VALUE, "route", ops.VALUE)
    b.output("answer", ("route", ops.IF_TRUE))
    b.graph.order("route", "answer")
    pruned = prune_dependencies(b.graph)
    # The gate survives as the data edge from if_true.
    assert pruned.in_edges("answer") == [Edge("route", "answer", ops.IF_TRUE, ops.VALUE)]
