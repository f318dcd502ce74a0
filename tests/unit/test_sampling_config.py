"""Per-query sampling (temperature, top_p, sample_top_k, seed, stop) as in the OpenAI
API: validated ranges in QueryConfig, lowered onto the free-text answer decodes only
(structured calls stay greedy), absent from greedy graphs, and `primflow run`'s flags
checked before any model loads."""

from __future__ import annotations

import pydantic
import pytest

from primflow.api import Generate, Query, QueryConfig, build_template
from primflow.api.lower import lower
from primflow.apps import get_app
from primflow.cli import main
from primflow.graph.ir import Graph, Op

DOCS = ["Fernwood Labs gives every employee twenty-eight days of paid leave each year. " * 40]
SAMPLING = {"temperature": 0.8, "top_p": 0.9, "sample_top_k": 40, "seed": 7}
SAMPLING_PARAMS = {"temperature": 0.8, "top_p": 0.9, "top_k": 40, "seed": 7}


def _graph(app: str, **changes: object) -> Graph:
    return lower(get_app(app).template(), get_app(app).query("How much leave?", DOCS, **changes))


def _decode_params(graph: Graph) -> dict[str, dict[str, object]]:
    return {n.name: dict(n.params) for n in graph.nodes_with_op(Op.LLM_DECODE)}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", -0.1, "greater than or equal to 0"),
        ("temperature", 2.5, "less than or equal to 2"),
        ("temperature", float("nan"), "finite number"),
        ("top_p", 0.0, "greater than 0"),
        ("top_p", 1.5, "less than or equal to 1"),
        ("sample_top_k", -1, "greater than or equal to 0"),
        ("seed", -1, "greater than or equal to 0"),
        ("seed", 2**32 - 1, "less than or equal to 4294967294"),
        ("stop", ["a", "b", "c", "d", "e"], "at most 4 items"),
        ("stop", ["ok", ""], "a stop string must not be empty"),
    ],
)
def test_bad_sampling_values_are_refused_naming_the_field(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=message) as info:
        QueryConfig().with_changes(**{field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_defaults_are_greedy_and_one_stop_string_is_a_list_of_one() -> None:
    config = QueryConfig()
    assert (config.temperature, config.top_p, config.sample_top_k) == (0.0, 1.0, 0)
    assert config.seed is None and config.stop == ()
    assert QueryConfig(stop="\n\n").stop == ("\n\n",)
    assert QueryConfig(stop=["END", "STOP"]).with_changes(seed=3).stop == ("END", "STOP")


def test_only_answer_decodes_sample() -> None:
    decodes = _decode_params(_graph("advanced_rag", synthesis_mode="one_shot", **SAMPLING))
    answer = decodes["synthesize.decode"]
    assert {k: answer[k] for k in SAMPLING_PARAMS} == SAMPLING_PARAMS
    expand = decodes["expand.decode"]  # its reply is parsed: it stays greedy
    assert not set(SAMPLING_PARAMS) & set(expand)
    judge = _decode_params(_graph("search_augmented", **SAMPLING))["judge.decode"]
    assert not set(SAMPLING_PARAMS) & set(judge)


def test_every_tree_call_samples_and_stops() -> None:
    graph = _graph("naive_rag", synthesis_mode="tree", stop=["\n\n"], **SAMPLING)
    decodes = _decode_params(graph)
    assert len(decodes) > 1
    for params in decodes.values():
        assert params["temperature"] == 0.8 and params["stop"] == ["\n\n"]


def test_a_greedy_query_lowers_to_the_same_graph_whatever_its_seed() -> None:
    # Greedy decoding ignores top_p, sample_top_k and seed: they stay out of the graph,
    # so greedy queries share one cached e-graph.
    plain = _graph("naive_rag")
    assert _graph("naive_rag", seed=5, top_p=0.5, sample_top_k=3) == plain
    assert _graph("naive_rag", temperature=0.5) != plain
    only_temperature = _decode_params(_graph("naive_rag", synthesis_mode="one_shot", temperature=1))
    assert only_temperature["synthesize.decode"]["temperature"] == 1
    assert "seed" not in only_temperature["synthesize.decode"]  # None: a random seed


def test_generate_keeps_its_own_stop_strings_first() -> None:
    generate = Generate(prompt="Q: {question}", reads={"question": "question"}, stop=["\n"])
    template = build_template("g", generate, outputs={"answer": "text"})
    config = QueryConfig(stop=["END", "\n"])
    decode = lower(template, Query("why?", config=config)).node("generate.decode")
    assert decode.params["stop"] == ["\n", "END"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "3"], "--temperature: Input should be less than or equal to 2"),
        (["--top-p", "0"], "--top-p: Input should be greater than 0"),
        (["--sample-top-k", "-2"], "--sample-top-k: Input should be greater than or equal"),
        (["--seed", "-1"], "--seed: Input should be greater than or equal to 0"),
        (["--stop", "a", "--stop", "b", "--stop", "c", "--stop", "d", "--stop", "e"], "--stop"),
    ],
)
def test_run_refuses_bad_sampling_flags_before_loading_models(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "naive_rag", "--docs", "samples/docs", "--question", "q?", *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
