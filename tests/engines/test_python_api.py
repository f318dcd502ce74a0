"""The Python API on the real embedded engines (SmolLM2 on llama.cpp, MiniLM, FAISS):
``Session.stream`` yields the answer's tokens while it is decoded, before the final
answer; ``primflow.run`` answers from a plain script, in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from guide_blocks import blocks, run

from primflow import Answer, AnswerEvent, NodeDoneEvent, Session, TokenEvent
from primflow.session import EngineStack, StreamEvent, embedded_factory

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    "Full-time employees get 25 days of paid annual leave per year.",
    "The Tidepool Marine model has a five-year warranty.",
]
QUESTION = "How many days of paid annual leave do employees get?"
SHORT = {"max_tokens": 12}


async def test_the_stream_yields_tokens_before_the_final_answer() -> None:
    stack = EngineStack.for_apps(["naive_rag"], embedded_factory(), num_cores=1)
    events: list[StreamEvent] = []
    async with stack, Session(stack) as session:
        async for event in session.stream("naive_rag", QUESTION, DOCS, config_changes=SHORT):
            events.append(event)
    *running, last = events
    assert isinstance(last, AnswerEvent)
    tokens = [e for e in running if isinstance(e, TokenEvent)]
    assert len(tokens) > 1  # streamed piece by piece, not in one go
    assert "".join(t.text for t in tokens).strip() == last.answer.text != ""
    decodes = {t.node for t in tokens}
    decode_done = [e for e in running if isinstance(e, NodeDoneEvent) and e.node.name in decodes]
    assert decode_done and running.index(decode_done[-1]) > running.index(tokens[-1])
    assert last.answer.passages[0].chunk.text == DOCS[0]


SCRIPT = """
import json, sys
from pathlib import Path

import primflow

pieces = []
answer = primflow.run(
    "naive_rag", sys.argv[2], Path(sys.argv[1]), config_changes={"max_tokens": 12},
    on_text=pieces.append,
)
print(json.dumps({"text": answer.text, "streamed": "".join(pieces),
                  "sources": [h.chunk.source for h in answer.passages]}))
"""


def test_run_answers_from_a_plain_script(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(DOCS):
        (docs / f"doc{i}.txt").write_text(text, encoding="utf-8")
    script = tmp_path / "ask.py"
    script.write_text(SCRIPT, encoding="utf-8")
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, str(script), str(docs), QUESTION],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["text"] and result["streamed"].strip() == result["text"]
    assert result["sources"][0] == "doc0.txt"


def test_the_guides_collection_snippet_runs_on_the_real_engines() -> None:
    page = "docs/guide/python-api.md"
    page_blocks = blocks(page)
    snippets = [b for b in page_blocks if b.title is None]
    (real,) = [b for b in page_blocks if b.title == "real engines"]
    namespace = run([*snippets, real], page)
    answer = namespace["from_collection"]
    assert isinstance(answer, Answer) and answer.text
    assert "vector_ingest" not in {n.op.value for n in answer.graph}
    assert answer.passages[0].chunk.source == "doc-0"
