"""Where the sample corpus lives: ``samples/`` at the repository root.

``PRIMFLOW_SAMPLES_DIR`` overrides the location (e.g. for an installed package).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from primflow.api.documents import Document, load_documents


def samples_dir() -> Path:
    override = os.environ.get("PRIMFLOW_SAMPLES_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "samples"
    if not path.is_dir():
        raise FileNotFoundError(
            f"sample corpus not found at {str(path)!r}; set PRIMFLOW_SAMPLES_DIR to the "
            "repository's samples/ folder"
        )
    return path


def sample_documents(*names: str) -> list[Document]:
    """The sample documents (all of them, or the named files of ``samples/docs``)."""
    docs_dir = samples_dir() / "docs"
    if not names:
        return load_documents(docs_dir)
    return [doc for name in names for doc in load_documents(docs_dir / name)]


def sample_documents_in(folder: str) -> list[Document]:
    """The documents of one sample corpus folder (e.g. ``multihop``) under ``samples/``."""
    return load_documents(samples_dir() / folder)


def sample_questions(file_name: str = "questions.jsonl") -> list[dict[str, Any]]:
    """The records of a question set under ``samples/`` (question, source,
    answer_contains), with a clear error naming the file and line of a bad record."""
    path = samples_dir() / file_name
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("question"), str):
            raise ValueError(f"{path}:{number}: a record needs a 'question' string")
        records.append(record)
    return records
