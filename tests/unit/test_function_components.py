"""@function components: port typing and its errors, lowering, lint, printing, the
passes (pruning across a function, staging a batchable one), and a YAML spec naming one."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from primflow import Embed, LatencyProfile, Query, build_template, function, lower, optimize
from primflow.api import FunctionComponent, SpecError, parse_spec
from primflow.graph.ir import INLINE_OPS, Op, PortType, Stage
from primflow.graph.lint import lint
from primflow.graph.ops import AggregateMode, FunctionRef
from primflow.graph.printers import node_line, to_json, to_text
from primflow.passes import decompose_stages, prune_dependencies
from primflow.testing.examples.keyword_rag import KEYWORD_RAG, keyword_filter
from primflow.values import Chunk, Hit

DOCS = ["Employees get 25 days of paid leave.", "Lunch is served from noon."]


# -- the signature is the contract ---------------------------------------------------
def test_ports_and_settings_come_from_the_signature() -> None:
    @function(outputs=("texts", "flag"))
    def many(
        question: str,
        chunks: list[Chunk],
        vectors: npt.NDArray[np.float32],
        raw: np.ndarray,
        extra: list[str] | None = None,
        anything: Any = None,
        *,
        limit: int = 3,
    ) -> tuple[list[str], bool]:
        return [], True

    types = {p.name: (p.type, p.is_optional) for p in many.ports}
    assert types == {
        "question": (PortType.TEXT, False),
        "chunks": (PortType.CHUNKS, False),
        "vectors": (PortType.VECTORS, False),
        "raw": (PortType.VECTORS, False),
        "extra": (PortType.TEXTS, True),
        "anything": (PortType.ANY, True),
    }
    assert many.settings == {"limit": 3}
    assert many.outputs == {"texts": PortType.TEXTS, "flag": PortType.BOOL}
    component = many(limit=5)
    assert isinstance(component, FunctionComponent)
    assert component.name == "many" and component.engine == "python"
    assert component.settings == {"limit": 5}
    assert component.input_roles()["extra"].is_optional


def _unsupported(question: dict[str, int]) -> str:
    return ""


def _unannotated(question) -> str:  # type: ignore[no-untyped-def]
    return ""


def _no_return(question: str):  # type: ignore[no-untyped-def]
    return question


def _port_default(question: str, top_k: int = 3) -> str:
    return question


def _two_lists(a: list[str], b: list[str]) -> list[str]:
    return a


def _text_result(a: list[str]) -> str:
    return ""


async def _async_fn(question: str) -> str:
    return question


def _setting_without_default(question: str, *, limit: int) -> str:
    return question


@pytest.mark.parametrize(
    ("fn", "options", "message"),
    [
        (_unsupported, {}, "parameter 'question' is annotated dict[str, int], which is no port"),
        (_unannotated, {}, "parameter 'question' has no annotation"),
        (_no_return, {}, "has no return annotation"),
        (_port_default, {}, "parameter 'top_k': a port's only default is None"),
        (_two_lists, {"batchable": True}, "exactly one list parameter (the items), got 2"),
        (_text_result, {"batchable": True}, "batchable needs one list result"),
        (_async_fn, {"is_cheap": True}, "is_cheap runs it inline"),
        (_setting_without_default, {}, "parameter 'limit': a setting (keyword-only) needs"),
    ],
)
def test_bad_signatures_are_refused_naming_the_function_and_parameter(
    fn: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError) as info:
        function(**options)(fn)
    assert f"function {__name__}:{fn.__name__}" in str(info.value)
    assert message in str(info.value)


def test_unknown_settings_and_bindings_are_refused() -> None:
    with pytest.raises(TypeError, match="has no setting 'min_words'"):
        keyword_filter(min_words=2)
    with pytest.raises(ValueError, match="has no input 'passages'"):
        keyword_filter(reads={"passages": "hits"})


def test_template_checks_the_channel_types_against_the_annotations() -> None:
    @function
    def wants_hits(hits: list[Hit]) -> list[Hit]:
        return hits

    with pytest.raises(ValueError, match="reads channel 'question_list' as 'hits': expected hits"):
        build_template("bad", wants_hits(reads={"hits": "question_list"}), outputs={"r": "result"})


# -- lowering, lint, printing --------------------------------------------------------
def test_a_function_lowers_to_one_linted_printed_primitive() -> None:
    graph = lower(KEYWORD_RAG.template(), KEYWORD_RAG.query("How many days of leave?", DOCS))
    lint(graph)
    node = graph.node("keyword_filter")
    assert node.op is Op.FUNCTION and node.engine == "python"
    assert node.params["function"] is keyword_filter.ref
    assert graph.parents("keyword_filter") == ["input.question", "search"]
    assert graph.children("keyword_filter") == ["rerank", "output.kept"]
    assert node_line(graph, node) == (
        "keyword_filter = function[python](question=input.question.value, hits=search.hits)"
        ' -> result:hits {function="primflow.testing.examples.keyword_rag:keyword_…,'
        ' settings={"min_shared_words": 1}}'
    )  # params are cut at MAX_PARAM_CHARS in the text form; JSON has them whole
    (entry,) = [n for n in to_json(graph)["nodes"] if n["name"] == "keyword_filter"]
    assert entry["params"]["function"] == keyword_filter.name
    again = lower(KEYWORD_RAG.template(), KEYWORD_RAG.query("How many days of leave?", DOCS))
    assert to_text(graph) == to_text(again)  # deterministic: no object addresses


def test_lint_names_a_function_node_that_breaks_its_contract() -> None:
    graph = lower(KEYWORD_RAG.template(), KEYWORD_RAG.query("Leave?", DOCS))
    node = graph.node("keyword_filter")
    graph.replace_node(node.replace(params={"function": "keyword_filter"}))
    with pytest.raises(ValueError, match="has no FunctionRef in params"):
        lint(graph)


def test_a_cheap_function_is_an_inline_op_on_no_engine() -> None:
    @function(is_cheap=True)
    def shorten(question: str) -> str:
        return question[:10]

    template = build_template("short", shorten(), outputs={"short": "result"})
    graph = lower(template, Query("What is a very long question?"))
    lint(graph)
    node = graph.node("shorten")
    assert node.op is Op.INLINE_FUNCTION and node.op in INLINE_OPS and node.engine is None
    with pytest.raises(ValueError, match="is_cheap: it runs inline"):
        shorten(engine="python")


# -- the passes treat it like any primitive ------------------------------------------
@function
def rewrite(question: str) -> list[str]:
    return [question.lower()]


def test_pruning_works_across_a_function() -> None:
    from primflow import ChunkDocuments, Ingest, VectorSearch

    flow = (
        ChunkDocuments(chunks="chunks")
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
        >> rewrite(writes={"result": "rewritten"})
        >> Embed("embed_question", items="rewritten", vectors="qv")
        >> VectorSearch(vectors="qv", index="index", hits="hits")
    )
    template = build_template("rewritten_rag", flow, outputs={"hits": "hits"})
    graph = lower(template, Query("How many DAYS of leave?", DOCS))
    assert "ingest" in graph.parents("rewrite")  # the template's order, as lowered
    pruned = prune_dependencies(graph)
    lint(pruned)
    assert pruned.parents("rewrite") == ["input.question"]
    assert pruned.parents("embed_question") == ["rewrite"]
    optimized, _ = optimize(graph, lint_each=True)
    assert optimized.parents("rewrite") == ["input.question"]


@function(batchable=True)
def clean(texts: list[str], *, suffix: str = "") -> list[str]:
    return [t.strip().lower() + suffix for t in texts]


def _clean_then_embed(num_texts: int) -> Any:
    flow = clean(reads={"texts": "texts"}, writes={"result": "cleaned"}) >> Embed(
        items="cleaned", vectors="vectors"
    )
    template = build_template(
        "clean_embed", flow, outputs={"vectors": "vectors"}, inputs={"texts": PortType.TEXTS}
    )
    texts = [f"  Text {i} " for i in range(num_texts)]
    return lower(template, Query("unused", inputs={"texts": texts}))


# 1 ms per item on both links, batches past 128 items gain nothing: cutting 1,000 items
# into 8 stages lets the embedder start after the first 125 (modelled ~0.13 s + 1 s
# against 2 s whole).
PAYING = {
    "python": LatencyProfile(base_s=0.001, per_item_s=0.001, efficient_batch_size=128),
    "embedder": LatencyProfile(base_s=0.002, per_item_s=0.001, efficient_batch_size=128),
}


def test_a_batchable_function_is_decomposed_into_stages_when_the_pipeline_pays() -> None:
    graph = _clean_then_embed(1000)
    staged = decompose_stages(graph, PAYING)
    lint(staged)
    heads = [n for n in staged if n.op is Op.FUNCTION]
    assert len(heads) == 8
    assert heads[0].provenance.stage == Stage("clean", 0, 8)
    assert heads[0].input("texts").num_items == 125 and heads[0].output("result").num_items == 125
    assert all(n.params["function"] is clean.ref for n in heads)
    embeds = [n for n in staged if n.op is Op.EMBED]
    assert len(embeds) == 8 and staged.parents(embeds[3].name) == [heads[3].name]
    (join,) = staged.nodes_with_op(Op.AGGREGATE)
    assert join.params["mode"] is AggregateMode.CONCAT
    _, report = optimize(graph, PAYING, lint_each=True)
    assert "decompose_stages" in report.changed_by


def test_a_batchable_function_is_left_whole_when_nothing_pays() -> None:
    graph = _clean_then_embed(1000)
    # The default function profile knows no per-item cost: no gain to model.
    assert decompose_stages(graph, {"embedder": PAYING["embedder"]}) is graph
    assert decompose_stages(_clean_then_embed(100), PAYING) == _clean_then_embed(100)


def test_a_non_batchable_function_is_never_staged() -> None:
    @function
    def upper(texts: list[str]) -> list[str]:
        return [t.upper() for t in texts]

    flow = upper(reads={"texts": "texts"}) >> Embed(items="result", vectors="vectors")
    template = build_template(
        "upper_embed", flow, outputs={"vectors": "vectors"}, inputs={"texts": PortType.TEXTS}
    )
    graph = lower(template, Query("unused", inputs={"texts": ["a"] * 1000}))
    assert decompose_stages(graph, PAYING) is graph


# -- YAML specs ----------------------------------------------------------------------
SPEC = """
name: keyword_spec
steps:
  - {name: embed_question, kind: embed, reads: {items: question_list}, writes: {vectors: qv}}
  - {name: search, kind: search, reads: {vectors: qv, index: index}, writes: {hits: hits}}
  - name: keep
    kind: function
    function: "primflow.testing.examples.keyword_rag:keyword_filter"
    settings: {min_shared_words: 2}
    writes: {result: kept}
outputs: {kept: kept}
inputs: {index: index}
"""


def test_a_spec_names_a_registered_function() -> None:
    template = parse_spec(SPEC)
    keep = template.component("keep")
    assert isinstance(keep, FunctionComponent) and keep.spec is keyword_filter
    assert keep.settings == {"min_shared_words": 2}
    assert template.channels["kept"].type is PortType.HITS


def test_a_spec_naming_an_unregistered_function_says_what_to_do() -> None:
    bad = SPEC.replace("keyword_rag:keyword_filter", "keyword_rag:no_such_filter")
    with pytest.raises(SpecError, match=r"steps\[2\] \(keep\): function: no function .*import"):
        parse_spec(bad)
    with pytest.raises(SpecError, match=r"steps\[2\] \(keep\): function .* no setting 'oops'"):
        parse_spec(SPEC.replace("min_shared_words: 2", "oops: 2"))


def test_function_refs_print_by_name_and_compare_by_identity() -> None:
    ref = keyword_filter.ref
    assert isinstance(ref, FunctionRef) and str(ref) == keyword_filter.name
    assert ref == ref and ref != FunctionRef(ref.fn, ref.name, ref.inputs, ref.outputs)
