"""``chunks.jsonl``: a FAISS collection's chunks, one JSON object per line, in row order
(``{"chunk_id": int, "source": str, "text": str}``). Line ``i`` is row ``i`` of
``index.faiss``; a malformed line is an error naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from primflow.collections.meta import CollectionError, write_atomic
from primflow.values import Chunk, SealedChunks, sealed_chunks_of


def write_chunks(path: Path, chunks: Sequence[Chunk]) -> None:
    lines = (
        json.dumps({"chunk_id": c.chunk_id, "source": c.source, "text": c.text}) for c in chunks
    )
    write_atomic(path, "".join(line + "\n" for line in lines))


def read_chunks(path: Path) -> SealedChunks:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CollectionError(f"cannot read {str(path)!r}: {exc}") from None
    chunks: list[Chunk] = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            chunk = Chunk(str(record["text"]), str(record["source"]), int(record["chunk_id"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CollectionError(f"{str(path)!r} line {number}: not a chunk ({exc})") from None
        chunks.append(chunk)
    return sealed_chunks_of(chunks)
