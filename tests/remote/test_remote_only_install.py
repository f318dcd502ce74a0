"""A remote-only install has no llama-cpp-python: a stack whose LLM and embedder are on
a server must build and answer without importing it. The CLI runs in a subprocess with
``llama_cpp`` blocked (``sys.modules['llama_cpp'] = None`` makes every import of it
fail) against the fake OpenAI-compatible server; the vector index stays embedded."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fake_openai import ANSWER, FakeServer

pytestmark = pytest.mark.remote

ROOT = Path(__file__).resolve().parents[2]
WITHOUT_LLAMA_CPP = (
    "import sys; sys.modules['llama_cpp'] = None; "
    "from primflow.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def test_a_remote_stack_answers_with_llama_cpp_absent(
    fake: FakeServer, tmp_path: Path
) -> None:
    engines = tmp_path / "remote.yaml"
    engines.write_text(
        "engines:\n"
        f"  llm: {{backend: openai, base_url: '{fake.base_url}', model: fake-model,"
        " dialect: llama_cpp_python}\n"
        f"  embedder: {{backend: openai, base_url: '{fake.base_url}', model: fake-model}}\n"
    )
    docs = tmp_path / "leave.md"
    docs.write_text("Employees get 25 days of paid leave a year.")
    args = ["run", "naive_rag", "--engines", str(engines), "--docs", str(docs)]
    args += ["--question", "How much leave do I get?", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", WITHOUT_LLAMA_CPP, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["answer"] == ANSWER
    assert fake.bodies_at("/v1/embeddings") and fake.bodies_at("/v1/chat/completions")
