"""Where the sample corpus lives: ``samples/`` at the repository root.

``PRIMFLOW_SAMPLES_DIR`` overrides the location (e.g. for an installed package).
"""

from __future__ import annotations

import os
from pathlib import Path

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
