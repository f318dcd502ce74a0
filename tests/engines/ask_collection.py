"""Run by test_collection_persistence.py in a process of its own: ask naive_rag a
question against a collection made by another process, on the real embedded engines
with the embedder recorded, and print one JSON line of what happened.

Usage: python tests/engines/ask_collection.py COLLECTIONS_DIR NAME QUESTION
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from primflow.collections import CollectionStore
from primflow.engines.base import EngineKind
from primflow.session import EngineStack, Session, embedded_factory
from primflow.testing.recording import RecordingEngine


async def ask(root: Path, name: str, question: str) -> dict[str, object]:
    embedded = embedded_factory()

    def build(name, kind, budget, profile):  # type: ignore[no-untyped-def]
        engine = embedded(name, kind, budget, profile)
        return RecordingEngine(engine) if kind is EngineKind.EMBEDDER else engine

    stack = EngineStack.for_apps(["naive_rag"], build, num_cores=1)
    embedder = stack.engines["embedder"]
    assert isinstance(embedder, RecordingEngine)
    async with stack, Session(stack) as session:
        collection = CollectionStore(root).open(name)
        answer = await session.ask(
            "naive_rag", question, collection=collection, config_changes={"max_tokens": 24}
        )
    return {
        "answer": answer.text,
        "sources": [h.chunk.source for h in answer.passages],
        "passages": [h.chunk.text for h in answer.passages],
        "ops": sorted({n.op.name for n in answer.graph}),
        "embedded": [
            [
                item if isinstance(item, str) else f"chunk:{item.chunk_id}"
                for item in r.inputs["items"]
            ]
            for r in embedder.requests
        ],
    }


if __name__ == "__main__":
    root, name, question = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    print(json.dumps(asyncio.run(ask(root, name, question))))
