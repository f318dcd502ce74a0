"""`primflow bench` options beyond the schemes: the documents every query brings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from primflow.apps.samples import samples_dir
from primflow.cli import main


def test_docs_option_sets_the_documents_of_every_query(tmp_path: Path) -> None:
    doc = samples_dir() / "docs" / "release_notes.md"
    args = ["bench", "--fake", "--apps", "contextual_retrieval", "--schemes", "primflow"]
    args += ["--workloads", "balanced", "--placements", "shared", "--num-questions", "1"]
    args += ["--rates", "none", "--out", str(tmp_path), "--name", "one_doc", "--docs", str(doc)]
    assert main(args) == 0
    report = json.loads((tmp_path / "one_doc.json").read_text())
    assert report["config"]["docs"] == str(doc)
    (case,) = report["cases"]
    # contextual retrieval situates every chunk of the one document, nothing more
    (query,) = case["single_queries"]
    situated = [p for p in query["timeline"] if p["node"].startswith("situate")]
    assert situated


def test_missing_docs_path_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["bench", "--fake", "--docs", str(missing)]) == 2
    assert f"--docs {str(missing)!r} does not exist" in capsys.readouterr().err
