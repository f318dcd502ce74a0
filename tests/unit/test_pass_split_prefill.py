"""split_prefill: the early prefix is prefilled apart from the late suffix."""

from __future__ import annotations

from graphs import RAG_TEMPLATE, GraphBuilder, naive_rag_graph

from primflow.graph import ops
from primflow.graph.ir import Edge, Op, PortType
from primflow.graph.lint import check_same_dependencies, lint
from primflow.passes.split_prefill import cut_template, finish_times_s, split_prefill


def test_rag_prefill_is_cut_before_the_retrieved_context() -> None:
    graph = naive_rag_graph(10, with_order=False)
    result = split_prefill(graph)
    lint(result)
    check_same_dependencies(graph, result)
    partial = result.node("answer_prefill.partial")
    full = result.node("answer_prefill.full")
    assert partial.op is Op.LLM_PARTIAL_PREFILL and full.op is Op.LLM_FULL_PREFILL
    assert partial.params["template"] + full.params["template"] == RAG_TEMPLATE
    assert full.params["template"].startswith("{context}")
    assert partial.params["request"] == full.params["request"] == "answer"
    assert partial.params["system"] == "Be brief." and "system" not in full.params
    assert [p.name for p in partial.inputs] == ["question"]
    assert [p.name for p in full.inputs] == [ops.STATE, "context"]
    assert result.parents("answer_prefill.partial") == ["question"]
    assert result.in_edges("answer_decode") == [
        Edge("answer_prefill.full", "answer_decode", ops.STATE, ops.STATE)
    ]
    assert "answer_prefill" not in result


def test_inputs_ready_together_are_not_split() -> None:
    b = GraphBuilder()
    b.input("question", PortType.TEXT)
    b.input("notes", PortType.TEXT)
    b.prefill(
        "p",
        "Q: {question}\nNotes: {notes}",
        {"question": ("question", ops.VALUE), "notes": ("notes", ops.VALUE)},
    )
    b.decode("d", ("p", ops.STATE))
    b.output("answer", ("d", ops.TEXT))
    assert split_prefill(b.graph) == b.graph


def test_no_split_when_the_prefix_would_be_empty() -> None:
    graph = naive_rag_graph(10, with_order=False)
    node = graph.node("answer_prefill")
    template = "{context}\nQuestion: {question}"
    graph.replace_node(node.replace(params={**node.params, "template": template}))
    assert split_prefill(graph) == graph


def test_placeholder_in_both_halves_is_fed_to_both() -> None:
    graph = naive_rag_graph(10, with_order=False)
    node = graph.node("answer_prefill")
    template = "Q: {question}\nContext: {context}\nAgain, Q: {question}"
    graph.replace_node(node.replace(params={**node.params, "template": template}))
    result = split_prefill(graph)
    lint(result)
    assert result.parents("answer_prefill.full") == ["answer_prefill.partial", "question", "search"]


def test_later_of_two_engine_fed_inputs_is_late() -> None:
    """Both inputs come from engines; the cheaper path is early by the profile estimate."""
    b = GraphBuilder()
    b.input("question", PortType.TEXT)
    b.input("index", PortType.INDEX)
    b.prefill("rewrite_prefill", "Rewrite: {question}", {"question": ("question", ops.VALUE)}, "rw")
    b.decode("rewrite", ("rewrite_prefill", ops.STATE), "rw")
    b.embed("embed_q", ("question", ops.VALUE), 1, PortType.TEXT)
    b.search("search", ("embed_q", ops.VECTORS), ("index", ops.VALUE), 1)
    b.prefill(
        "p",
        "Hits: {hits}\nQuestion: {q}",
        {"hits": ("search", ops.HITS), "q": ("rewrite", ops.TEXT)},
    )
    b.decode("d", ("p", ops.STATE))
    b.output("answer", ("d", ops.TEXT))
    finish = finish_times_s(b.graph, {})
    assert finish["search"] < finish["rewrite"]
    result = split_prefill(b.graph)
    lint(result)
    assert result.node("p.partial").params["template"] == "Hits: {hits}\nQuestion: "
    assert result.node("p.full").params["template"] == "{q}"


def test_cut_template_keeps_escaped_braces() -> None:
    assert cut_template("JSON {{x}}: {a} then {b}", {"b"}) == ("JSON {{x}}: {a} then ", "{b}")
    assert cut_template("{a}{b}", set()) is None


def test_second_run_changes_nothing() -> None:
    once = split_prefill(naive_rag_graph(10, with_order=False))
    assert split_prefill(once) == once
