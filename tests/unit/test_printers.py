"""Printers: exact text for a small graph, JSON shape, dot and Mermaid structure."""

from __future__ import annotations

import json

from graphs import GraphBuilder, naive_rag_graph

from primflow.graph import ops
from primflow.graph.ir import PortType
from primflow.graph.printers import to_dot, to_json, to_mermaid, to_text


def small_graph() -> GraphBuilder:
    b = GraphBuilder()
    b.input("input_chunks", PortType.CHUNKS, 666)
    b.embed("embed_docs.s0", ("input_chunks", ops.VALUE), 111)
    b.graph.remove_edge(b.graph.in_edges("embed_docs.s0")[0])
    b.graph.connect("input_chunks", ops.VALUE, "embed_docs.s0", ops.ITEMS, select=(0, 111))
    b.output("vectors", ("embed_docs.s0", ops.VECTORS))
    b.graph.order("input_chunks", "vectors")
    return b


def test_text_is_one_line_per_node_in_topological_order() -> None:
    assert to_text(small_graph().graph) == (
        "input_chunks = input() -> value:chunks(666) {key='input_chunks'}\n"
        "embed_docs.s0 = embed[embedder](items=input_chunks.value[0:111])"
        " -> vectors:vectors(111)\n"
        "vectors = output(value=embed_docs.s0.vectors, ~input_chunks) {key='vectors'}\n"
    )


def test_text_shows_unfed_inputs_and_shortens_long_params() -> None:
    graph = naive_rag_graph(4)
    graph.remove_node("search")
    line = next(ln for ln in to_text(graph).splitlines() if ln.startswith("answer_prefill"))
    assert "context=-" in line
    assert "template='Answer from the context.\\nQuestion: {question}…" in line


def test_text_follows_dependencies_not_insertion_order() -> None:
    graph = naive_rag_graph(4)
    ingest = graph.remove_node("ingest")
    graph.add_node(ingest)  # now last in insertion order, but search reads it
    graph.connect("chunks", ops.VALUE, "ingest", ops.CHUNKS)
    graph.connect("embed_docs", ops.VECTORS, "ingest", ops.VECTORS)
    graph.connect("ingest", ops.INDEX, "search", ops.INDEX)
    names = [line.split(" = ")[0] for line in to_text(graph).splitlines()]
    assert names.index("ingest") < names.index("search")


def test_json_has_the_agreed_keys_first() -> None:
    data = to_json(naive_rag_graph(4))
    json.dumps(data)  # JSON-safe
    first = data["nodes"][0]
    assert list(first)[:4] == ["name", "op", "parents", "engine"]
    by_name = {n["name"]: n for n in data["nodes"]}
    assert by_name["search"]["parents"] == ["embed_query", "ingest"]
    assert by_name["search"]["engine"] == "vectors"
    assert by_name["answer_prefill"]["after"] == ["search"]
    assert by_name["answer_prefill"]["parents"] == ["question", "search"]
    assert by_name["chunks"]["engine"] is None


def test_dot_marks_order_edges_dashed_and_labels_ports() -> None:
    dot = to_dot(small_graph().graph)
    assert dot.startswith('digraph "pgraph" {')
    assert '"input_chunks" -> "vectors" [style=dashed];' in dot
    assert '"input_chunks" -> "embed_docs.s0" [label="value[0:111] → items"];' in dot
    assert '"embed_docs.s0" [label="embed_docs.s0\\nembed[embedder]", shape=box];' in dot


def test_mermaid_uses_safe_ids() -> None:
    text = to_mermaid(small_graph().graph)
    assert text.splitlines() == [
        "flowchart TD",
        '  n0["input_chunks<br/>input"]',
        '  n1["embed_docs.s0<br/>embed[embedder]"]',
        '  n2["vectors<br/>output"]',
        '  n0 -->|"value[0:111] → items"| n1',
        '  n1 -->|"vectors → value"| n2',
        "  n0 -.-> n2",
    ]


def test_output_is_deterministic() -> None:
    for printer in (to_text, to_dot, to_mermaid):
        assert printer(naive_rag_graph(8)) == printer(naive_rag_graph(8))
    assert to_json(naive_rag_graph(8)) == to_json(naive_rag_graph(8))


def test_a_graph_with_a_cycle_still_prints() -> None:
    graph = naive_rag_graph(4)
    graph.order("answer", "chunks")
    assert len(to_text(graph).splitlines()) == len(graph)
