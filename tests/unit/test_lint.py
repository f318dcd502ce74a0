"""lint: one test per rule, each breaking a clean graph in exactly one way."""

from __future__ import annotations

import pytest
from graphs import GraphBuilder, advanced_rag_graph, naive_rag_graph

from primflow.graph import ops
from primflow.graph.ir import Edge, Graph, GraphError, Node, Op, Port, PortType
from primflow.graph.lint import LintError, check_same_dependencies, find_problems, lint


def problems_of(graph: Graph) -> list[str]:
    with pytest.raises(LintError) as info:
        lint(graph)
    assert isinstance(info.value, GraphError)
    assert info.value.problems == find_problems(graph)
    return info.value.problems


def test_clean_workflows_pass() -> None:
    lint(naive_rag_graph(10))
    lint(advanced_rag_graph(50))


def test_cycle_is_reported() -> None:
    graph = naive_rag_graph(10)
    graph.order("answer_decode", "embed_docs")
    assert any("cycle" in p for p in problems_of(graph))


def test_missing_input_edge_names_the_port() -> None:
    graph = naive_rag_graph(10)
    graph.remove_edge(Edge("search", "answer_prefill", ops.HITS, "context"))
    assert "input answer_prefill.context has no incoming edge" in problems_of(graph)


def test_two_edges_into_one_port() -> None:
    graph = naive_rag_graph(10)
    graph.connect("chunks", ops.VALUE, "embed_query", ops.ITEMS)
    assert "input embed_query.items has 2 incoming edges" in problems_of(graph)


def test_optional_port_may_be_unfed_but_not_doubly_fed() -> None:
    b = GraphBuilder()
    b.input("q", PortType.TEXT)
    node = Node("out", Op.OUTPUT, inputs=(Port(ops.VALUE, PortType.TEXT, is_optional=True),))
    b.graph.add_node(node)
    lint(b.graph)
    b.graph.connect("q", ops.VALUE, "out", ops.VALUE)
    b.input("q2", PortType.TEXT)
    b.graph.connect("q2", ops.VALUE, "out", ops.VALUE)
    assert "input out.value has 2 incoming edges" in problems_of(b.graph)


def test_edge_into_unknown_port_after_node_replaced() -> None:
    graph = naive_rag_graph(10)
    search = graph.node("search")
    graph.replace_node(search.replace(inputs=(search.input(ops.VECTORS),)))
    problems = problems_of(graph)
    assert any("node 'search' has no input port 'index'" in p for p in problems)


def test_type_mismatch() -> None:
    graph = naive_rag_graph(10)
    graph.remove_edge(Edge("ingest", "search", ops.INDEX, ops.INDEX))
    graph.connect("embed_docs", ops.VECTORS, "search", ops.INDEX)
    assert any("vectors output cannot feed index input" in p for p in problems_of(graph))


def test_select_on_non_list_port() -> None:
    graph = naive_rag_graph(10)
    graph.remove_edge(Edge("ingest", "search", ops.INDEX, ops.INDEX))
    graph.connect("ingest", ops.INDEX, "search", ops.INDEX, select=(0, 1))
    assert any("select slices a non-list index port" in p for p in problems_of(graph))


def test_select_beyond_num_items() -> None:
    graph = naive_rag_graph(10)
    graph.remove_edge(Edge("chunks", "embed_docs", ops.VALUE, ops.ITEMS))
    graph.connect("chunks", ops.VALUE, "embed_docs", ops.ITEMS, select=(5, 11))
    assert any("select [5:11] exceeds 10 items" in p for p in problems_of(graph))


def test_empty_select() -> None:
    graph = naive_rag_graph(10)
    graph.remove_edge(Edge("chunks", "embed_docs", ops.VALUE, ops.ITEMS))
    graph.connect("chunks", ops.VALUE, "embed_docs", ops.ITEMS, select=(4, 4))
    assert any("is empty or negative" in p for p in problems_of(graph))


def test_placeholder_without_port() -> None:
    graph = naive_rag_graph(10)
    node = graph.node("answer_prefill")
    template = node.params["template"] + " {style}"
    graph.replace_node(node.replace(params={**node.params, "template": template}))
    assert "node 'answer_prefill': placeholder {style} has no input port" in problems_of(graph)


def test_unused_prompt_input() -> None:
    graph = naive_rag_graph(10)
    node = graph.node("answer_prefill")
    graph.replace_node(node.replace(params={**node.params, "template": "Q: {question}"}))
    assert "input answer_prefill.context is not used by the prompt template" in problems_of(graph)


def test_prompt_op_without_template() -> None:
    graph = naive_rag_graph(10)
    node = graph.node("answer_prefill")
    params = {k: v for k, v in node.params.items() if k != "template"}
    graph.replace_node(node.replace(params=params))
    assert any("has no prompt template" in p for p in problems_of(graph))


def test_engine_op_without_engine() -> None:
    graph = naive_rag_graph(10)
    graph.replace_node(graph.node("search").replace(engine=None))
    assert "node 'search' (vector_search) has no engine" in problems_of(graph)


def test_decode_reading_state_of_another_request() -> None:
    graph = naive_rag_graph(10)
    node = graph.node("answer_decode")
    graph.replace_node(node.replace(params={**node.params, "request": "other"}))
    problems = problems_of(graph)
    assert any(
        "'answer_decode' (request 'other') reads state of 'answer_prefill'" in p for p in problems
    )


def test_llm_op_without_request() -> None:
    graph = naive_rag_graph(10)
    node = graph.node("answer_decode")
    params = {k: v for k, v in node.params.items() if k != "request"}
    graph.replace_node(node.replace(params=params))
    assert any(
        "'answer_decode' (llm_decode) has no params['request']" in p for p in problems_of(graph)
    )


def _aggregate_graph(part_names: list[str], mode: str = "concat") -> Graph:
    b = GraphBuilder()
    for name in part_names:
        b.input(f"in_{name}", PortType.TEXTS, 1)
    node = Node(
        "join",
        Op.AGGREGATE,
        inputs=tuple(Port(name, PortType.TEXTS, 1) for name in part_names),
        outputs=(Port(ops.RESULT, PortType.TEXTS, len(part_names)),),
        params={"mode": mode},
    )
    b.graph.add_node(node)
    for name in part_names:
        b.graph.connect(f"in_{name}", ops.VALUE, "join", name)
    return b.graph


def test_aggregate_parts_must_be_contiguous() -> None:
    lint(_aggregate_graph(["part_0", "part_1"]))
    problems = problems_of(_aggregate_graph(["part_0", "part_2"]))
    assert any("parts are part_0, part_2; expected part_0, part_1" in p for p in problems)


def test_aggregate_mode_must_be_known() -> None:
    assert any("unknown mode 'sum'" in p for p in problems_of(_aggregate_graph(["part_0"], "sum")))


def test_fixed_output_port_missing() -> None:
    graph = naive_rag_graph(10)
    graph.replace_node(graph.node("embed_query").replace(outputs=()))
    problems = problems_of(graph)
    assert "node 'embed_query' (embed) lacks output port 'vectors'" in problems


def test_every_problem_is_listed_at_once() -> None:
    graph = naive_rag_graph(10)
    graph.replace_node(graph.node("search").replace(engine=None))
    graph.replace_node(graph.node("embed_docs").replace(engine=None))
    assert len(problems_of(graph)) == 2


def test_same_dependencies_accepts_pruning_and_flags_a_lost_input() -> None:
    before = naive_rag_graph(10)
    after = before.copy()
    for edge in after.edges:
        if edge.kind == "order":
            after.remove_edge(edge)
    check_same_dependencies(before, after)
    after.remove_edge(Edge("question", "answer_prefill", ops.VALUE, "question"))
    after.remove_edge(Edge("question", "embed_query", ops.VALUE, ops.ITEMS))
    with pytest.raises(LintError, match="output 'answer' depended on"):
        check_same_dependencies(before, after)


def test_same_dependencies_flags_a_lost_output() -> None:
    before = naive_rag_graph(10)
    after = before.copy()
    after.remove_node("answer")
    with pytest.raises(LintError, match="output 'answer' disappeared"):
        check_same_dependencies(before, after)
