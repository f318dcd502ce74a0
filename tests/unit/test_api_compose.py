"""Composition with >> and template validation (channels, order, names)."""

from __future__ import annotations

import pytest

from primflow.api import (
    Aggregate,
    ChunkDocuments,
    Condition,
    Embed,
    Generate,
    Ingest,
    Judge,
    Rerank,
    Synthesize,
    TemplateError,
    VectorSearch,
    WebSearch,
    build_template,
)
from primflow.api.component import Flow
from primflow.graph.ir import PortType


def _edge_names(flow: Flow) -> set[tuple[str, str]]:
    return {(a.name, b.name) for a, b in flow.edges}


def test_rshift_chains_three_components() -> None:
    a, b, c = Embed("a"), Embed("b"), Embed("c")
    flow = a >> b >> c
    assert _edge_names(flow) == {("a", "b"), ("b", "c")}
    assert [x.name for x in flow.sources] == ["a"]
    assert [x.name for x in flow.sinks] == ["c"]


def test_lists_fan_out_and_in() -> None:
    a, b, c, d = Embed("a"), Embed("b"), Embed("c"), Embed("d")
    flow = a >> [b, c] >> d
    assert _edge_names(flow) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    fan_in = [b, c] >> d
    assert _edge_names(fan_in) == {("b", "d"), ("c", "d")}


def test_a_component_in_two_flows_is_one_node() -> None:
    chunk = ChunkDocuments()
    embed = Embed("embed_docs", items="chunks", vectors="doc_vectors")
    ingest = Ingest(chunks="chunks", vectors="doc_vectors")
    template = build_template(
        "t", chunk >> embed >> ingest, chunk >> ingest, outputs={"index": "index"}
    )
    assert [c.name for c in template.components] == ["chunk", "embed_docs", "ingest"]
    assert set(template.edges) == {
        ("chunk", "embed_docs"),
        ("embed_docs", "ingest"),
        ("chunk", "ingest"),
    }


def test_channel_types_are_tracked() -> None:
    flow = (
        ChunkDocuments()
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors")
    )
    template = build_template("t", flow, outputs={"index": "index"})
    assert template.channels["doc_vectors"].type is PortType.VECTORS
    assert template.channels["doc_vectors"].writer == "embed_docs"
    assert template.channels["question"].writer is None  # a query input


def test_two_components_with_one_name_are_rejected() -> None:
    with pytest.raises(TemplateError, match=r"'embed'.*share this name"):
        build_template(
            "t",
            Embed(items="question_list") >> Embed(items="question_list"),
            outputs={"v": "vectors"},
        )


def test_reading_an_unwritten_channel_names_component_and_channel() -> None:
    flow = Embed("embed_q", items="question_list", vectors="qv") >> VectorSearch(vectors="qv")
    with pytest.raises(TemplateError, match=r"'search'.*channel 'index'.*no upstream"):
        build_template("t", flow, outputs={"hits": "hits"})


def test_type_mismatch_names_role_and_types() -> None:
    with pytest.raises(
        TemplateError, match=r"'embed_q'.*'question' as 'items'.*texts or chunks.*text"
    ):
        build_template("t", Embed("embed_q", items="question"), outputs={"v": "vectors"})


def test_reading_a_channel_from_a_component_not_upstream_is_rejected() -> None:
    embed = Embed("embed_q", items="question_list", vectors="qv")
    chunk = ChunkDocuments()
    embed_docs = Embed("embed_docs", items="chunks", vectors="dv")
    ingest = Ingest(vectors="dv")
    search = VectorSearch(vectors="qv")
    # search is ordered after embed only; ingest (which writes `index`) is elsewhere
    with pytest.raises(TemplateError, match=r"'search'.*written by 'ingest'.*ingest >> search"):
        build_template("t", chunk >> embed_docs >> ingest, embed >> search, outputs={"h": "hits"})


def test_writing_a_channel_twice_is_rejected() -> None:
    flow = Embed("a", items="question_list", vectors="v") >> Embed(
        "b", items="question_list", vectors="v"
    )
    with pytest.raises(
        TemplateError, match=r"'b'.*writes channel 'v', already written by component 'a'"
    ):
        build_template("t", flow, outputs={"v": "v"})


def test_a_cycle_is_rejected() -> None:
    a = Embed("a", items="question_list", vectors="va")
    b = Embed("b", items="question_list", vectors="vb")
    with pytest.raises(TemplateError, match=r"cycle through a, b"):
        build_template("t", a >> b, b >> a, outputs={"v": "va"})


def test_unknown_output_channel_is_rejected() -> None:
    with pytest.raises(TemplateError, match=r"output 'answer' names unknown channel 'nope'"):
        build_template("t", Embed(items="question_list"), outputs={"answer": "nope"})


def test_generate_requires_every_placeholder_bound() -> None:
    gen = Generate(prompt="Q: {question}\nNotes: {notes}", reads={"question": "question"})
    with pytest.raises(TemplateError, match=r"'generate'.*placeholder \{notes\} is not bound"):
        build_template("t", gen, outputs={"text": "text"})


def test_generate_rejects_a_binding_for_a_missing_placeholder() -> None:
    with pytest.raises(ValueError, match=r"no input 'notes'"):
        Generate(prompt="Q: {question}", reads={"question": "question", "notes": "x"})


def test_generate_rejects_a_malformed_prompt() -> None:
    with pytest.raises(ValueError, match=r"malformed"):
        Generate(prompt="Q: {question", reads={"question": "question"})


def test_unknown_role_keyword_is_rejected() -> None:
    with pytest.raises(TypeError):
        Embed(text="question")  # type: ignore[call-arg]


def test_component_engines_default_and_override() -> None:
    assert Embed().engine == "embedder"
    assert Judge().engine == "judge"
    assert Generate(prompt="{q}", reads={"q": "question"}).engine == "llm"
    assert Generate(prompt="{q}", reads={"q": "question"}, engine="core").engine == "core"
    assert Embed.batchable and Embed.splittable
    assert Rerank.batchable and not Rerank.splittable


def test_conditional_branch_channels_are_marked() -> None:
    flow = (
        Judge()
        >> Condition(decision="decision", value="question_list", if_true="search_queries")
        >> WebSearch(queries="search_queries", hits="web_hits")
        >> Generate(
            "answer",
            config_prompt="search_answer",
            reads={"question": "question", "search_results": "web_hits"},
            optional=["search_results"],
            text="answer",
        )
    )
    template = build_template("t", flow, outputs={"answer": "answer"})
    assert template.channels["search_queries"].is_conditional
    assert template.channels["web_hits"].is_conditional
    assert not template.channels["answer"].is_conditional  # reads web_hits as optional


def test_aggregate_parts_must_share_a_type() -> None:
    flow = Embed("e", items="question_list", vectors="v") >> Aggregate(
        parts=["v", "question"], mode="concat"
    )
    with pytest.raises(TemplateError, match=r"'aggregate'.*parts must have one type"):
        build_template("t", flow, outputs={"r": "result"})


def test_aggregate_top_k_needs_hits() -> None:
    with pytest.raises(TemplateError, match=r"top_k merges hits"):
        build_template("t", Aggregate(parts=["question"], mode="top_k"), outputs={"r": "result"})


def test_bad_top_k_is_rejected_at_build() -> None:
    flow = Synthesize(context="question_list")
    build_template("ok", flow, outputs={"a": "answer"})
    with pytest.raises(TemplateError, match=r"top_k must be > 0"):
        build_template("t", Rerank(hits="h", top_k=0), outputs={"r": "reranked"})
