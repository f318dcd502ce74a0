"""The sample question sets the benchmark asks: every record points at a source that
holds its answer, and a bad record is named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from primflow.apps import APPS
from primflow.apps.samples import sample_questions, samples_dir
from primflow.bench.benchmark import questions_for


def _web_corpus() -> dict[str, str]:
    files = sorted((samples_dir() / "web").glob("*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    return {r["url"]: r["text"] for r in records}


def test_web_questions_point_at_pages_that_hold_the_answer() -> None:
    corpus = _web_corpus()
    records = sample_questions("web_questions.jsonl")
    assert len(records) >= 10
    for record in records:
        assert record["answer_contains"] in corpus[record["source"]], record


def test_every_app_names_an_existing_question_set() -> None:
    for app in APPS.values():
        assert len(sample_questions(app.questions_file)) >= 10, app.name


def test_benchmark_asks_each_app_its_own_questions() -> None:
    web = questions_for(3, "search_augmented")
    docs = questions_for(3, "naive_rag")
    assert web[0] == APPS["search_augmented"].sample_question
    assert not set(web) & set(docs)
    assert len(questions_for(25, "naive_rag")) == 25  # cycles through a short set


def test_a_bad_record_is_named_by_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "q.jsonl").write_text('{"question": "ok"}\n{"question": 3}\n')
    monkeypatch.setenv("PRIMFLOW_SAMPLES_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"q\.jsonl:2: a record needs a 'question' string"):
        sample_questions("q.jsonl")
    (tmp_path / "q.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match=r"q\.jsonl:1: not JSON"):
        sample_questions("q.jsonl")


def test_corrective_questions_point_at_a_document_or_page_that_holds_the_answer() -> None:
    corpus = _web_corpus()
    records = sample_questions("corrective_questions.jsonl")
    assert {r["expects"] for r in records} == {"documents", "web"}
    for record in records:
        if record["expects"] == "web":
            text = corpus[record["source"]]
        else:
            text = (samples_dir() / "docs" / record["source"]).read_text()
        assert record["answer_contains"] in text, record
