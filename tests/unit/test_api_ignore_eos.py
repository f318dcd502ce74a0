"""QueryConfig.ignore_eos: off by default; when set, only free-text answer decodes carry it.

Answer decodes are synthesis calls (one-shot, refine chain, tree leaves and combines)
and Generate; the structured ones (query expansion, the judge, situate) never get it,
and a decode with a parser asking for it is a lowering error.
"""

from __future__ import annotations

import pydantic
import pytest

from primflow.api import Generate, Query, QueryConfig, build_template
from primflow.api.components.llm_call import DecodeSpec
from primflow.api.lower import LoweringContext, LoweringError, lower
from primflow.apps import APPS, get_app
from primflow.graph import ops
from primflow.graph.ir import Graph, Op
from primflow.graph.lint import lint

SENTENCE = "Fernwood Labs gives every employee twenty-eight days of paid leave each year. "
DOCS = [SENTENCE * 40]  # ~3000 characters: several chunks, several passages


def _graph(app: str, **changes: object) -> Graph:
    graph = lower(get_app(app).template(), get_app(app).query("How much leave?", DOCS, **changes))
    lint(graph)
    return graph


def _decodes_with_ignore_eos(graph: Graph) -> dict[str, bool]:
    return {n.name: "ignore_eos" in n.params for n in graph.nodes_with_op(Op.LLM_DECODE)}


def test_config_default_is_off_and_it_can_be_set() -> None:
    assert QueryConfig().ignore_eos is False
    assert QueryConfig().with_changes(ignore_eos=True).ignore_eos is True
    with pytest.raises(pydantic.ValidationError, match="ignore_eos"):
        QueryConfig().with_changes(ignore_eos="sometimes")


@pytest.mark.parametrize("app", sorted(APPS))
def test_no_decode_has_the_param_by_default(app: str) -> None:
    decodes = _decodes_with_ignore_eos(_graph(app))
    assert decodes and not any(decodes.values())


@pytest.mark.parametrize(
    ("app", "answers", "structured"),
    [
        ("naive_rag", {"synthesize.decode"}, set()),
        ("advanced_rag", {"synthesize.decode"}, {"expand.decode"}),
        ("search_augmented", {"answer.decode"}, {"judge.decode"}),
    ],
)
def test_only_answer_decodes_get_the_param(
    app: str, answers: set[str], structured: set[str]
) -> None:
    graph = _graph(app, ignore_eos=True, synthesis_mode="one_shot")
    decodes = _decodes_with_ignore_eos(graph)
    assert {name for name, has in decodes.items() if has} == answers
    assert structured <= {name for name, has in decodes.items() if not has}
    for name in answers:
        assert graph.node(name).params["ignore_eos"] is True


def test_situate_calls_never_get_it_but_the_synthesis_does() -> None:
    graph = _graph("contextual_retrieval", ignore_eos=True, synthesis_mode="one_shot")
    decodes = _decodes_with_ignore_eos(graph)
    situate = [name for name in decodes if name.startswith("situate")]
    assert situate and not any(decodes[name] for name in situate)
    assert decodes["synthesize.decode"]


@pytest.mark.parametrize("mode", ["refine", "tree"])
def test_every_call_of_a_multi_call_synthesis_gets_it(mode: str) -> None:
    graph = _graph("naive_rag", ignore_eos=True, synthesis_mode=mode, top_k=4)
    decodes = _decodes_with_ignore_eos(graph)
    assert len(decodes) >= 4  # 4 passages: a chain of 4, or 4 leaves + combines
    assert all(decodes.values())


def test_the_other_answer_params_are_unchanged() -> None:
    plain = _graph("naive_rag", synthesis_mode="one_shot").node("synthesize.decode").params
    graph = _graph("naive_rag", synthesis_mode="one_shot", ignore_eos=True)
    forced = graph.node("synthesize.decode").params
    assert {k: v for k, v in forced.items() if k != "ignore_eos"} == plain


class _StructuredIgnoringEos(Generate):
    """A component that (wrongly) asks for ignore_eos on a decode with a parser."""

    def decode_spec(self, ctx: LoweringContext) -> DecodeSpec:
        return DecodeSpec(
            max_tokens=32, parser=ops.DecodeParser.JSON_LIST, num_items=2, ignore_eos=True
        )


def test_a_structured_decode_asking_for_it_is_a_lowering_error() -> None:
    component = _StructuredIgnoringEos(
        "listing", prompt="List two words about {question}", reads={"question": "question"}
    )
    template = build_template("t", component, outputs={"answer": "text"})
    with pytest.raises(LoweringError, match=r"'listing'.*ignore_eos.*parser"):
        lower(template, Query("What is leave?"))
