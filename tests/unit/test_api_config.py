"""Per-query config: validation of sizes and prompt placeholders, and Query."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from primflow.api import Document, Prompts, Query, QueryConfig, SynthesisMode


def test_defaults_and_changes() -> None:
    config = QueryConfig()
    changed = config.with_changes(top_k=7, synthesis_mode="refine")
    assert changed.top_k == 7 and changed.synthesis_mode is SynthesisMode.REFINE
    assert config.top_k == 3  # the original is untouched


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("top_k", 0, "greater than 0"),
        ("chunk_size", -5, "greater than 0"),
        ("tree_fanout", 1, "greater than or equal to 2"),
        ("synthesis_mode", "summary", "one_shot"),
        ("topk", 3, "Extra inputs"),
    ],
)
def test_bad_fields_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        QueryConfig.model_validate({field: value})
    assert field in str(info.value)


def test_overlap_must_be_smaller_than_chunk_size() -> None:
    with pytest.raises(ValidationError, match=r"chunk_overlap \(300\) must be < chunk_size"):
        QueryConfig(chunk_size=300, chunk_overlap=300)


def test_prompt_with_unbound_placeholder_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"prompts.answer: placeholder \{ctx\} is not bound"):
        Prompts(answer="Q: {question} C: {ctx}")


def test_prompt_missing_a_required_placeholder_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"prompts.answer: needs placeholder \{context\}"):
        Prompts(answer="Q: {question}")


def test_prompt_with_literal_braces_is_fine() -> None:
    prompts = Prompts(expansion='Reply like ["a", "b"] or {{"q": 1}}. {question}')
    assert "{{" in prompts.expansion


def test_query_accepts_strings_as_documents_and_rejects_empty_question() -> None:
    query = Query("why?", ["one", Document("two", "t.txt")])
    assert [d.source for d in query.documents] == ["doc-0", "t.txt"]
    with pytest.raises(ValueError, match="question is empty"):
        Query("  ")
