"""Lowering (GraphTransform): the p-graph's shape follows the query's data and config."""

from __future__ import annotations

import pytest

from primflow.api import Query, QueryConfig
from primflow.api.lower import LoweringError, lower, lower_query
from primflow.apps import get_app
from primflow.graph import ops
from primflow.graph.ir import LLM_OPS, EdgeKind, Graph, Op
from primflow.graph.lint import lint

SENTENCE = "Fernwood Labs gives every employee twenty-eight days of paid leave each year. "


def _docs(num_chars: int) -> list[str]:
    return [SENTENCE * (num_chars // len(SENTENCE) + 1)]


def _query(app: str, num_chars: int = 3000, **changes: object) -> Query:
    return get_app(app).query("How much leave?", _docs(num_chars), **changes)


def _graph(app: str, num_chars: int = 3000, **changes: object) -> Graph:
    graph = lower(get_app(app).template(), _query(app, num_chars, **changes))
    lint(graph)
    return graph


def _llm_calls(graph: Graph, origin: str) -> list[str]:
    return [n.name for n in graph.nodes_with_op(Op.LLM_PREFILL) if n.origin == origin]


def test_document_chunks_become_one_input_with_their_count() -> None:
    for num_chars, chunk_size in [(3000, 300), (9000, 300), (9000, 150)]:
        lowered = lower_query(
            get_app("naive_rag").template(),
            _query("naive_rag", num_chars, chunk_size=chunk_size, chunk_overlap=0),
        )
        chunks = lowered.inputs["chunks"]
        assert len(chunks) >= num_chars // chunk_size
        node = lowered.graph.node("input.chunks")
        assert node.params == {"key": "chunks"}
        assert node.output(ops.VALUE).num_items == len(chunks)
        assert lowered.graph.node("embed_docs").num_items == len(chunks)
        assert lowered.graph.node("ingest").input(ops.VECTORS).num_items == len(chunks)


def test_one_input_node_per_query_input_and_output_per_result() -> None:
    graph = _graph("advanced_rag")
    inputs = {n.params["key"]: n.name for n in graph.nodes_with_op(Op.INPUT)}
    assert inputs == {
        "chunks": "input.chunks",
        "question": "input.question",
        "question_list": "input.question_list",
    }
    outputs = {n.params["key"] for n in graph.nodes_with_op(Op.OUTPUT)}
    assert outputs == {"answer", "hits"}


@pytest.mark.parametrize("num_expansions", [1, 3, 5])
def test_expansion_count_sets_the_decode_items(num_expansions: int) -> None:
    graph = _graph("advanced_rag", num_chars=9000, num_expansions=num_expansions)
    decode = graph.node("expand.decode")
    assert decode.is_splittable
    assert decode.params["num_items"] == num_expansions
    assert decode.params["parser"] == "json_list"
    assert decode.params["json_schema"]["maxItems"] == num_expansions
    assert decode.output(ops.ITEMS).num_items == num_expansions
    assert graph.node("embed_queries").num_items == num_expansions
    assert graph.node("search_queries").output(ops.HITS).num_items == num_expansions * 16
    prompt = graph.node("expand.prefill").params["template"]
    assert f"Write {num_expansions} short search queries" in prompt


def test_original_question_is_kept_among_the_searches() -> None:
    graph = _graph("advanced_rag")
    assert graph.parents("embed_question") == ["input.question_list", "expand.decode"]
    data_parents = [e.src for e in graph.in_edges("embed_question") if e.kind is EdgeKind.DATA]
    assert data_parents == ["input.question_list"]
    assert set(graph.parents("merge")) == {"rerank_question", "rerank_queries"}


@pytest.mark.parametrize("top_k", [1, 2, 3, 5])
def test_refine_chain_has_one_call_per_passage(top_k: int) -> None:
    graph = _graph("advanced_rag", rerank_top_k=top_k)
    calls = _llm_calls(graph, "synthesize")
    assert len(calls) == top_k
    for step in range(1, top_k):
        prefill = f"synthesize.step{step}.prefill"
        answer_src = [e.src for e in graph.in_edges(prefill) if e.dst_port == "answer"]
        assert answer_src == [f"synthesize.step{step - 1}.decode"]
        context = [e for e in graph.in_edges(prefill) if e.dst_port == "context"]
        assert [e.select for e in context] == [(step, step + 1)]
    last = "synthesize.decode" if top_k == 1 else f"synthesize.step{top_k - 1}.decode"
    assert graph.parents("output.answer") == [last]


@pytest.mark.parametrize(
    ("num_leaves", "fanout", "num_calls", "depth"),
    [(1, 2, 1, 1), (2, 2, 3, 2), (3, 2, 5, 3), (4, 2, 7, 3), (5, 2, 9, 4), (5, 3, 8, 3)],
)
def test_tree_synthesis_shape(num_leaves: int, fanout: int, num_calls: int, depth: int) -> None:
    graph = _graph("naive_rag", top_k=num_leaves, tree_fanout=fanout)
    calls = _llm_calls(graph, "synthesize")
    assert len(calls) == num_calls
    assert _llm_depth(graph, "output.answer") == depth
    leaves = [c for c in calls if ".leaf" in c]
    assert len(leaves) == (num_leaves if num_leaves > 1 else 0)


def _llm_depth(graph: Graph, name: str) -> int:
    """LLM calls (decodes) on the longest path from the inputs to ``name``."""
    parents = graph.parents(name)
    below = max((_llm_depth(graph, p) for p in parents), default=0)
    return below + (graph.node(name).op is Op.LLM_DECODE)


def test_tree_combines_group_answers_through_numbered_placeholders() -> None:
    graph = _graph("naive_rag", top_k=3)
    root = graph.node("synthesize.level2_0.prefill")
    assert [p.name for p in root.inputs] == ["question", "answer_0", "answer_1"]
    assert "- {answer_0}\n- {answer_1}" in root.params["template"]
    assert graph.parents(root.name) == [
        "input.question",
        "synthesize.level1_0.decode",
        "synthesize.leaf2.decode",
    ]


def test_one_shot_is_a_single_call_over_all_passages() -> None:
    graph = _graph("naive_rag", synthesis_mode="one_shot", top_k=4)
    assert _llm_calls(graph, "synthesize") == ["synthesize.prefill"]
    assert graph.node("synthesize.prefill").input("context").num_items == 4


def test_search_hits_are_bounded_by_the_corpus() -> None:
    graph = _graph("contextual_retrieval", num_chars=1200, chunk_size=400, chunk_overlap=0)
    num_chunks = graph.node("input.chunks").output(ops.VALUE).num_items
    assert num_chunks is not None and num_chunks < 32
    assert graph.node("search").output(ops.HITS).num_items == num_chunks


def test_contextual_retrieval_situates_each_chunk_with_neighbours() -> None:
    graph = _graph("contextual_retrieval", num_chars=2400, chunk_size=400, chunk_overlap=0)
    num_chunks = graph.node("input.chunks").output(ops.VALUE).num_items
    assert num_chunks is not None and num_chunks >= 6
    assert len(_llm_calls(graph, "situate")) == num_chunks
    selects = {
        e.dst_port: e.select for e in graph.in_edges("situate.3.prefill") if e.kind is EdgeKind.DATA
    }
    assert selects == {"neighbours": (1, 6), "chunk": (3, 4)}
    join = graph.node("situate.join")
    assert join.params["mode"] == "concat" and len(join.inputs) == num_chunks
    # Each chunk is embedded as its context followed by its text; the index stores the
    # original chunks.
    text = graph.node("situate.text")
    assert text.params["mode"] == "zip_texts"
    assert [(e.src, e.dst_port) for e in graph.in_edges("situate.text")] == [
        ("situate.join", ops.part(0)),
        ("input.chunks", ops.part(1)),
    ]
    assert [e.src for e in graph.in_edges("embed_docs") if e.kind is EdgeKind.DATA] == [
        "situate.text"
    ]
    assert [e.src for e in graph.in_edges("ingest") if e.dst_port == ops.CHUNKS] == ["input.chunks"]
    assert graph.node("ingest").input(ops.CHUNKS).num_items == num_chunks


def test_llm_requests_are_unique_per_call_and_shared_by_its_phases() -> None:
    graph = _graph("naive_rag", top_k=4)
    by_request: dict[str, list[Op]] = {}
    for node in graph:
        if node.op in LLM_OPS:
            by_request.setdefault(node.params["request"], []).append(node.op)
    assert all(ops_ == [Op.LLM_PREFILL, Op.LLM_DECODE] for ops_ in by_request.values())
    assert len(by_request) == 7


def test_template_edges_become_order_edges_from_tails_to_heads() -> None:
    graph = _graph("naive_rag")
    order = {(e.src, e.dst) for e in graph.edges if e.kind is EdgeKind.ORDER}
    # ingest >> embed_question carries no data, so only ORDER keeps the module order
    assert ("ingest", "embed_question") in order
    # where data already flows, no ORDER edge duplicates it
    assert ("embed_docs", "ingest") not in order
    assert ("chunk", "embed_docs") not in order and ("input.chunks", "embed_docs") not in order


def test_condition_branch_outputs_are_optional_downstream() -> None:
    graph = lower(get_app("search_augmented").template(), Query("Who won?"))
    lint(graph)
    assert graph.node("judge.prefill").engine == "judge"
    assert graph.node("answer.prefill").engine == "llm"
    assert graph.node("answer.prefill").input("search_results").is_optional
    assert graph.node("output.hits").input(ops.VALUE).is_optional
    assert not graph.node("output.answer").input(ops.VALUE).is_optional
    assert [e.src_port for e in graph.in_edges("web_search")] == [ops.IF_TRUE]


def test_query_without_documents_is_an_error_naming_the_component() -> None:
    with pytest.raises(LoweringError, match="'chunk': the query brings no documents"):
        lower(get_app("naive_rag").template(), Query("q?", config=QueryConfig()))


def test_bad_prompt_in_config_is_caught_when_lowering() -> None:
    app = get_app("naive_rag")
    prompts = QueryConfig().prompts.model_copy(update={"answer": "Only {question}"})
    config = app.default_config.model_copy(update={"prompts": prompts})
    with pytest.raises(ValueError, match=r"prompts.answer: needs placeholder \{context\}"):
        lower(app.template(), Query("q?", tuple(_docs(500)), config))  # type: ignore[arg-type]


def test_lowering_is_deterministic() -> None:
    assert _graph("advanced_rag") == _graph("advanced_rag")


def test_extra_template_inputs_come_from_the_query() -> None:
    from primflow.api import Generate, build_template
    from primflow.graph.ir import PortType

    gen = Generate(prompt="{question} {notes}", reads={"question": "question", "notes": "notes"})
    template = build_template("t", gen, outputs={"text": "text"}, inputs={"notes": PortType.TEXT})
    lowered = lower_query(template, Query("q?", inputs={"notes": "remember this"}))
    assert lowered.inputs == {"question": "q?", "notes": "remember this"}
    assert lowered.graph.node("input.notes").params == {"key": "notes"}
    with pytest.raises(LoweringError, match="no value for template input 'notes'"):
        lower(template, Query("q?"))
