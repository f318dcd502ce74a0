"""Property tests: random workflow graphs stay valid through every pass.

The strategy draws RAG-shaped workflows (document indexing, optional query expansion
with a parsed decode, per-query embed -> search -> optional rerank, an answer prompt
in one of several placeholder orders) with random sizes, random engine profiles and
random ORDER edges, as lowering would add them.
"""

from __future__ import annotations

from graphs import GraphBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Graph, Op, PortType
from primflow.graph.lint import check_same_dependencies, lint
from primflow.graph.lint_provenance import check_provenance
from primflow.passes.pipeline import default_passes, optimize

ANSWER_TEMPLATES = [
    "Answer.\nQuestion: {question}\nContext: {context}",
    "Context: {context}\nQuestion: {question}",
    "Q: {question}\nC: {context}\nQ again: {question}",
    "Use {{braces}} literally. {question} then {context}.",
]


def _query_source(draw: st.DrawFn, b: GraphBuilder) -> tuple[tuple[str, str], int, PortType]:
    if draw(st.booleans()):
        num_queries = draw(st.integers(2, 5))
        b.prefill(
            "expand_prefill",
            "Queries for {question}",
            {"question": ("question", ops.VALUE)},
            "expand",
        )
        b.decode("expand_decode", ("expand_prefill", ops.STATE), "expand", num_queries)
        if draw(st.booleans()):
            b.output("queries", ("expand_decode", ops.ITEMS))
        return ("expand_decode", ops.ITEMS), num_queries, PortType.TEXTS
    num_queries = draw(st.integers(1, 80))
    b.input("queries", PortType.TEXTS, num_queries)
    return ("queries", ops.VALUE), num_queries, PortType.TEXTS


@st.composite
def workflows(draw: st.DrawFn) -> Graph:
    b = GraphBuilder()
    num_chunks = draw(st.integers(1, 300))
    b.input("chunks", PortType.CHUNKS, num_chunks)
    b.input("question", PortType.TEXT)
    b.embed("embed_docs", ("chunks", ops.VALUE), num_chunks)
    b.ingest("ingest", ("chunks", ops.VALUE), ("embed_docs", ops.VECTORS), num_chunks)
    if draw(st.booleans()):
        b.output("index", ("ingest", ops.INDEX))
    queries, num_queries, query_type = _query_source(draw, b)
    b.embed("embed_queries", queries, num_queries, query_type)
    top_k = draw(st.integers(1, 4))
    b.search("search", ("embed_queries", ops.VECTORS), ("ingest", ops.INDEX), num_queries, top_k)
    context = ("search", ops.HITS)
    if draw(st.booleans()):
        num_hits = num_queries * top_k
        b.rerank("rerank", ("question", ops.VALUE), context, num_hits, draw(st.integers(1, 5)))
        context = ("rerank", ops.HITS)
    template = draw(st.sampled_from(ANSWER_TEMPLATES))
    b.prefill("answer_prefill", template, {"question": ("question", ops.VALUE), "context": context})
    b.decode("answer_decode", ("answer_prefill", ops.STATE))
    b.output("answer", ("answer_decode", ops.TEXT))
    order = b.graph.topo_order()
    pairs = draw(
        st.lists(st.tuples(st.integers(0, len(order) - 1), st.integers(0, len(order) - 1)))
    )
    for i, j in pairs:
        if i < j:
            b.graph.order(order[i], order[j])
    return b.graph


# Per-item costs matter: stage decomposition splits only where pipelining pays, so the
# vector index is drawn either cheap (no split) or as slow as the embedder (split).
profiles = st.builds(
    lambda embed, index, rerank, index_per_item_s: {
        "embedder": LatencyProfile(base_s=0.002, per_item_s=0.012, efficient_batch_size=embed),
        "vectors": LatencyProfile(
            base_s=0.0005, per_item_s=index_per_item_s, efficient_batch_size=index
        ),
        "reranker": LatencyProfile(base_s=0.002, per_item_s=0.012, efficient_batch_size=rerank),
    },
    st.integers(4, 64),
    st.integers(4, 128),
    st.integers(4, 64),
    st.sampled_from([0.0002, 0.012]),
)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(workflows(), profiles)
def test_every_pass_keeps_graphs_valid_and_dependencies_intact(
    graph: Graph, known: dict[str, LatencyProfile]
) -> None:
    lint(graph)
    current = graph
    for graph_pass in default_passes(known) * 2:
        snapshot = current.copy()
        rewritten = graph_pass.run(current)
        assert current == snapshot, f"{graph_pass.name} changed its input"
        lint(rewritten)
        check_same_dependencies(current, rewritten)
        check_provenance(current, rewritten)
        current = rewritten
    check_same_dependencies(graph, current)
    check_provenance(graph, current)


@SETTINGS
@given(workflows(), profiles)
def test_pipeline_reaches_a_fixpoint_with_lint_between_passes(
    graph: Graph, known: dict[str, LatencyProfile]
) -> None:
    result, report = optimize(graph, known, lint_each=True)
    assert report.is_fixpoint
    again, _ = optimize(result, known)
    assert again == result
    # Stages are no larger than the embedder's efficient batch size.
    efficient = known["embedder"].efficient_batch_size
    for node in result.nodes_with_op(Op.EMBED):
        if node.source == "embed_docs" and node.provenance.stage is not None:
            assert node.input(ops.ITEMS).num_items is not None
            assert node.input(ops.ITEMS).num_items <= efficient


@SETTINGS
@given(workflows(), profiles)
def test_stages_cover_each_document_chunk_exactly_once(
    graph: Graph, known: dict[str, LatencyProfile]
) -> None:
    result, _ = optimize(graph, known)
    num_chunks = graph.node("chunks").outputs[0].num_items
    assert num_chunks is not None
    for port in (ops.ITEMS, ops.CHUNKS):
        covered: list[int] = []
        for edge in result.out_edges("chunks"):
            if edge.dst_port == port:
                start, stop = edge.select or (0, num_chunks)
                covered.extend(range(start, stop))
        assert sorted(covered) == list(range(num_chunks))
