"""End to end on the real embedded engines behind the real server: naive_rag over
samples/docs, answers streamed token by token to httpx and to the `openai` client, and
the serving guide's newcomer flow (upload a folder with curl, ask from curl and from
the `openai` client) run from the guide's own code blocks."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from serve_process import REPO, ServerProcess

pytestmark = pytest.mark.e2e
MAX_TOKENS = 24
GUIDE = REPO / "docs" / "guide" / "serving.md"
GUIDE_URL = "http://127.0.0.1:8000"


def snippet(marker: str) -> str:
    """The code block after ``<!-- newcomer: MARKER -->`` in the serving guide."""
    after = GUIDE.read_text(encoding="utf-8").split(f"<!-- newcomer: {marker} -->\n", 1)[1]
    block = after.split("```", 2)[1]
    return block.split("\n", 1)[1]


def _documents() -> list[dict[str, str]]:
    docs = sorted((REPO / "samples" / "docs").iterdir())
    return [{"text": p.read_text(encoding="utf-8"), "source": p.name} for p in docs]


def _question(index: int = 0) -> dict[str, str]:
    lines = (REPO / "samples" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    record: dict[str, str] = json.loads(lines[index])
    return record


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    command = shlex.split(snippet("serve"))  # the guide's command, on a free port
    assert command[:2] == [".venv/bin/primflow", "serve"], command
    root = tmp_path_factory.mktemp("collections")
    extra = ["--cores", "1", "--max-tokens", str(MAX_TOKENS), "--collections-dir", str(root)]
    with ServerProcess(*command[2:], *extra) as server:
        yield server


def test_streamed_answer_over_http_on_real_engines(embedded: ServerProcess) -> None:
    record = _question(0)
    payload = {"question": record["question"], "documents": _documents(), "stream": True}
    url = f"{embedded.url}/v1/apps/naive_rag/query"
    tokens: list[str] = []
    done: dict[str, object] = {}
    nodes: list[dict[str, object]] = []
    with httpx.stream("POST", url, json=payload, timeout=300) as response:
        assert response.status_code == 200
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
                if event == "token":
                    tokens.append(data["text"])
                elif event == "node_done":
                    nodes.append(data)
                elif event == "done":
                    done = data
    assert len(tokens) > 1  # decoded token by token, not one blob
    assert "".join(tokens).strip() == done["answer"]
    assert record["source"] in {p["source"] for p in done["passages"]}  # type: ignore[attr-defined]
    assert {"embedder", "vector_index", "llm"} <= {n["engine"] for n in nodes}


def test_openai_client_streams_from_real_engines(embedded: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{embedded.url}/v1", api_key="unused", max_retries=0)
    record = _question(1)
    messages = [{"role": "user", "content": record["question"]}]
    stream = client.chat.completions.create(
        model="naive_rag",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        extra_body={"documents": _documents()},
        timeout=300,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) > 1
    whole = client.chat.completions.create(
        model="naive_rag",
        messages=messages,  # type: ignore[arg-type]
        extra_body={"documents": _documents()},
        timeout=300,
    )
    assert whole.choices[0].message.content
    ready = httpx.get(f"{embedded.url}/ready", timeout=30).json()
    assert ready["status"] == "ready" and ready["engines"]["llm"]["is_healthy"]


def _run_guide_shell(marker: str, url: str) -> dict[str, object]:
    done = subprocess.run(
        ["bash", "-c", snippet(marker).replace(GUIDE_URL, url)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_guide_s_newcomer_flow(embedded: ServerProcess) -> None:
    uploaded = _run_guide_shell("upload", embedded.url)
    num_files = len(list(Path(REPO / "samples" / "docs").iterdir()))
    assert uploaded["is_new"] and uploaded["num_documents_added"] == num_files, uploaded
    answered = _run_guide_shell("ask", embedded.url)
    assert answered["answer"], answered
    sources = {p["source"] for p in answered["passages"]}  # type: ignore[attr-defined]
    assert _question(0)["source"] in sources
    ops = {p["op"] for p in answered["primitives"]}  # type: ignore[attr-defined]
    assert "vector_ingest" not in ops  # the collection was indexed once, at upload
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(snippet("openai").replace(GUIDE_URL, embedded.url), {})
    assert printed.getvalue().strip()
