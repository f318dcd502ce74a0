"""Workflows as YAML/JSON specs: equivalence with Python templates and every bad case."""

from __future__ import annotations

from pathlib import Path

import pytest

from primflow.api import SpecError, load_spec, parse_spec
from primflow.api.lower import lower
from primflow.apps import get_app
from primflow.apps.samples import samples_dir

GOOD = """
name: mini
steps:
  - {name: embed_q, kind: embed, reads: {items: question_list}, writes: {vectors: qv}}
  - {name: answer, kind: generate, prompt: "Q: {question}", reads: {question: question}}
outputs: {answer: text}
"""


@pytest.mark.parametrize(
    ("spec_file", "app_name"),
    [("naive_rag.yaml", "naive_rag"), ("search_augmented.json", "search_augmented")],
)
def test_sample_specs_lower_to_the_same_graph_as_the_apps(spec_file: str, app_name: str) -> None:
    app = get_app(app_name)
    query = app.query(app.sample_question, documents=["Some text about leave. " * 40])
    from_spec = lower(load_spec(samples_dir() / "specs" / spec_file), query)
    assert from_spec == lower(app.template(), query)


def test_steps_form_a_chain_unless_after_is_given() -> None:
    template = parse_spec(GOOD)
    assert template.edges == (("embed_q", "answer"),)
    with_after = GOOD.replace("kind: generate,", "kind: generate, after: [],")
    assert parse_spec(with_after).edges == ()


def _error(text: str, fmt: str = "yaml") -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, fmt)  # type: ignore[arg-type]
    return str(info.value)


def test_non_positive_top_k_names_the_step_field() -> None:
    text = GOOD.replace(
        "outputs:",
        "  - {name: s, kind: search, top_k: 0, reads: {vectors: qv}}\noutputs:",
    )
    assert "steps[2].top_k: must be > 0" in _error(text)


def test_unknown_component_lists_known_kinds() -> None:
    message = _error(GOOD.replace("kind: embed", "kind: embedd"))
    assert "steps[0].kind: unknown component 'embedd'" in message
    assert "embed" in message and "synthesize" in message


def test_cycle_is_reported() -> None:
    text = GOOD.replace("kind: embed,", "kind: embed, after: [answer],")
    assert "cycle through embed_q, answer" in _error(text)


def test_unbound_prompt_placeholder_names_step_and_placeholder() -> None:
    text = GOOD.replace('"Q: {question}"', '"Q: {question} N: {notes}"')
    assert "steps[1] (answer): prompt placeholder {notes} is not bound" in _error(text)


def test_missing_input_names_step_and_channel() -> None:
    text = GOOD.replace("items: question_list", "items: questions")
    message = _error(text)
    assert "steps[0] (embed_q): reads channel 'questions'" in message
    assert "not a template input" in message


def test_type_mismatch_names_step_and_types() -> None:
    text = GOOD.replace("items: question_list", "items: question")
    assert "steps[0] (embed_q): reads channel 'question' as 'items': expected texts or chunks" in (
        _error(text)
    )


def test_malformed_yaml_gives_the_line() -> None:
    message = _error("name: x\nsteps: [\n  - {name: a\n")
    assert "malformed YAML at line" in message


def test_malformed_json_gives_the_line() -> None:
    assert "malformed JSON at line 2" in _error('{"name": "x",\n "steps": [}', "json")


def test_yaml_tags_never_run_code() -> None:
    message = _error("name: !!python/object/apply:os.system ['echo hi']\nsteps: []\n")
    assert "malformed YAML" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- just a list", "expected a mapping"),
        ("name: x\nsteps: []\noutputs: {a: b}", "steps: list should have at least 1 item"),
        (GOOD.replace("name: mini", "name: mini\ncolour: red"), "colour: is not a known field"),
        (
            GOOD.replace("kind: embed,", "kind: embed, topk: 3,"),
            "steps[0].topk: is not a known field",
        ),
        (GOOD.replace("{name: embed_q, ", "{"), "steps[0].name: is required"),
        (GOOD.replace("kind: embed, ", ""), "steps[0].kind: is required"),
        (GOOD.replace("reads: {items", "reads: {text"), "steps[0] (embed_q): reads: kind 'embed'"),
        (GOOD.replace("kind: generate,", "kind: generate, after: [nope],"), "after: unknown step"),
        (GOOD.replace("outputs: {answer: text}", "outputs: {answer: nope}"), "unknown channel"),
        (GOOD.replace("name: answer", "name: embed_q"), "steps[1].name: 'embed_q' is already used"),
    ],
)
def test_other_bad_specs(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_load_spec_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")


def _grown(template: object, decisions: list[str]) -> object:
    from primflow.api.lower import lower_query
    from primflow.api.template import Template

    assert isinstance(template, Template)
    lowered = lower_query(template, get_app("multi_hop_rag").sample_query())
    assert lowered.growth is not None
    lowered.growth.attach(lowered.graph)
    return lowered.growth.unroll(decisions)


@pytest.mark.parametrize("decisions", [[], ["no"], ["no", "no"]])
def test_a_loop_spec_grows_the_same_graph_as_the_app(decisions: list[str]) -> None:
    spec = load_spec(samples_dir() / "specs" / "multi_hop_rag.yaml")
    assert _grown(spec, decisions) == _grown(get_app("multi_hop_rag").template(), decisions)


def _loop_spec(**changes: str) -> str:
    text = (samples_dir() / "specs" / "multi_hop_rag.yaml").read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("max_rounds: 2", "max_rounds: 0", r"steps\[6\]\.max_rounds: must be > 0"),
        ("top_k: 6", "top_k: 0", r"steps\[6\]\.steps\.no\.steps\[4\]\.top_k: must be > 0"),
        (
            "kind: judge",
            "kind: jduge",
            r"steps\[6\]\.check\.steps\[0\]\.kind: unknown component 'jduge'",
        ),
        (
            "outputs: {evidence: evidence_next, chain: chain_next}",
            "outputs: {notes: evidence_next, chain: chain_next}",
            r"steps\[6\] \(hops\): step 'no' writes 'notes', which is not a state name",
        ),
        (
            'stop_on: ["yes"]',
            'stop_on: ["no"]',
            r"steps\[6\] \(hops\): choice 'no' both stops the loop and names a step",
        ),
        (
            "reads: {question: question, evidence: chain}\n          writes: {decision",
            "reads: {question: question, evidence: chian}\n          writes: {decision",
            r"loop 'hops' check: .*chian",
        ),
    ],
)
def test_a_bad_loop_spec_names_the_field(old: str, new: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        parse_spec(_loop_spec(**{old: new}))
