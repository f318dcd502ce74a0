"""A collection indexed once answers in a later process without re-embedding: process
one runs `primflow index` on samples/docs (real MiniLM, FAISS files), process two asks
naive_rag against it on the real engines (SmolLM2, MiniLM, FAISS) and its embedder is
asked to embed the question alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[2]
QUESTION = "How many days of paid annual leave do full-time employees get?"


def run_python(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )


def test_a_collection_indexed_once_answers_in_a_later_process(tmp_path: Path) -> None:
    root = tmp_path / "collections"
    indexed = run_python(
        "-m", "primflow.cli", "index", "samples/docs", "--collection", "samples",
        "--collections-dir", str(root), "--cores", "1",
    )  # fmt: skip
    assert indexed.returncode == 0, indexed.stderr
    assert "collection 'samples': added 8 documents" in indexed.stdout
    meta = json.loads((root / "samples" / "meta.json").read_text())
    assert meta["embedding_model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert meta["dim"] == 384 and meta["num_chunks"] > 50

    asked = run_python("tests/engines/ask_collection.py", str(root), "samples", QUESTION)
    assert asked.returncode == 0, asked.stderr
    result = json.loads(asked.stdout.strip().splitlines()[-1])
    assert result["embedded"] == [[QUESTION]]  # one request, one row: the question
    assert "VECTOR_INGEST" not in result["ops"] and "VECTOR_SEARCH" in result["ops"]
    assert result["sources"] and result["sources"][0] == "handbook_leave.md"
    assert any("annual leave" in text.lower() for text in result["passages"])
    assert result["answer"]
