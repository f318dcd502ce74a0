"""Drain on SIGTERM, API keys and the config file, each on a server of its own."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from reliability import body, control, state, wait_for
from serve_process import REPO, ServerProcess, fake_server

QUERY = "/v1/apps/naive_rag/query"


async def _drain_case(server: ServerProcess, release: bool) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await control(client, "all", "hold")
        running = asyncio.ensure_future(client.post(QUERY, json=body()))
        await wait_for(client, lambda s: s["server"]["num_active_queries"] == 1)
        server.signal(signal.SIGTERM)
        for _ in range(400):  # bounded: until the server says it is draining
            if (await client.get("/ready")).status_code == 503:
                break
            await asyncio.sleep(0.025)
        refused = await client.post(QUERY, json=body("a late question"))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "shutting_down"
        assert (await state(client))["server"]["num_active_queries"] == 1
        if release:
            await control(client, "all", "release")
        return await running


async def test_sigterm_drains_running_queries_then_exits() -> None:
    with fake_server("--drain-timeout-s", "60") as server:
        finished = await _drain_case(server, release=True)
        assert finished.status_code == 200 and finished.json()["answer"]
        assert server.wait(30) == 0
    assert "draining" in server.output


async def test_drain_timeout_cancels_what_is_still_running() -> None:
    with fake_server("--drain-timeout-s", "0.2") as server:
        cancelled = await _drain_case(server, release=False)
        assert cancelled.status_code == 503
        assert cancelled.json()["error"]["type"] == "cancelled"
        assert server.wait(30) == 0


def test_api_key_from_the_environment_guards_v1_not_health() -> None:
    with fake_server(env={"PRIMFLOW_API_KEY": "s3cret-key"}) as server:
        url = f"{server.url}/v1/apps"
        assert httpx.get(url).status_code == 401
        wrong = httpx.get(url, headers={"Authorization": "Bearer s3cret-kez"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "unauthorized"
        assert httpx.get(url, headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert "s3cret" not in server.output  # never printed


def test_config_file_sets_options_and_flags_win(tmp_path: Path) -> None:
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"apps": ["search_augmented"], "max-queued-queries": 7}))
    server = ServerProcess(
        "--engine-backend", "fake", "--config", str(config), "--apps", "naive_rag"
    )
    with server:
        names = [a["name"] for a in httpx.get(f"{server.url}/v1/apps").json()["apps"]]
        assert names == ["naive_rag"]  # the flag won
    assert "max queued queries: 7" in server.output


def test_bad_options_fail_before_any_engine_starts(tmp_path: Path) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\n")
    cases = [
        ["--apps", "nope"],
        ["--apps", str(spec)],
        ["--max-queued-queries", "0"],
        ["--config", str(tmp_path / "missing.yaml")],
    ]
    for args in cases:
        done = subprocess.run(
            [sys.executable, "-m", "primflow.cli", "serve", "--engine-backend", "fake", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": ""},
            timeout=60,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("primflow serve: ")


def test_spec_files_are_served_beside_built_in_apps(tmp_path: Path) -> None:
    spec = json.loads((REPO / "samples" / "specs" / "search_augmented.json").read_text())
    spec["name"] = "my_web_answer"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(spec))
    with ServerProcess("--engine-backend", "fake", "--apps", f"naive_rag,{path}") as server:
        apps = httpx.get(f"{server.url}/v1/apps").json()["apps"]
        assert [a["name"] for a in apps] == ["naive_rag", "my_web_answer"]
        answer = httpx.post(
            f"{server.url}/v1/apps/my_web_answer/query", json={"question": "what is teola?"}
        )
        assert answer.status_code == 200 and answer.json()["app"] == "my_web_answer"
    assert "my_web_answer" in server.output


def _serve_exits(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "primflow.cli", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
        timeout=120,
    )


def test_engines_file_errors_are_clear_and_exit_non_zero(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("engines:\n  llm: {backend: openai, base_url: http://x, model: m, bogus: 1}\n")
    bad = _serve_exits("--engine-backend", "fake", "--engines", str(typo))
    assert bad.returncode == 2 and "engines.llm.openai.bogus" in bad.stderr, bad.stderr
    # Valid, but nobody listens there: the remote LLM fails its start-up check.
    unreachable = tmp_path / "unreachable.yaml"
    unreachable.write_text(
        "engines:\n  llm:\n    backend: openai\n    base_url: http://127.0.0.1:9\n"
        "    model: nope\n    max_retries: 0\n    connect_timeout_s: 2\n"
    )
    down = _serve_exits("--engine-backend", "fake", "--engines", str(unreachable))
    assert down.returncode == 3, (down.stdout, down.stderr)
    last = down.stderr.strip().splitlines()[-1]  # after a warning: no latency profile
    assert last.startswith("primflow serve: the engines did not start: ")
    assert "127.0.0.1:9" in last and "Traceback" not in down.stderr + down.stdout
    assert "ready at" not in down.stdout


KEYWORD_SPEC = """\
name: keyword_answers
steps:
  - {name: chunk, kind: chunk, writes: {chunks: chunks}}
  - {name: embed_docs, kind: embed, reads: {items: chunks}, writes: {vectors: doc_vectors}}
  - name: ingest
    kind: ingest
    reads: {chunks: chunks, vectors: doc_vectors}
    writes: {index: index}
  - {name: embed_question, kind: embed, reads: {items: question_list}, writes: {vectors: qv}}
  - {name: search, kind: search, reads: {vectors: qv, index: index}, writes: {hits: hits}}
  - name: keyword_filter
    kind: function
    function: "primflow.testing.examples.keyword_rag:keyword_filter"
    settings: {min_shared_words: 1}
    reads: {question: question, hits: hits}
    writes: {result: kept}
  - name: synthesize
    kind: synthesize
    reads: {question: question, context: kept}
    writes: {answer: answer}
outputs: {answer: answer, hits: kept}
"""


def test_a_spec_with_a_function_step_is_served_with_imports(tmp_path: Path) -> None:
    spec = tmp_path / "keyword_answers.yaml"
    spec.write_text(KEYWORD_SPEC)
    missing = _serve_exits("--engine-backend", "fake", "--apps", str(spec))
    assert missing.returncode == 2 and "is registered" in missing.stderr, missing.stderr
    module = "primflow.testing.examples.keyword_rag"
    args = ("--engine-backend", "fake", "--apps", str(spec), "--imports", module)
    with ServerProcess(*args) as server:
        apps = httpx.get(f"{server.url}/v1/apps").json()["apps"]
        assert [a["name"] for a in apps] == ["keyword_answers"]
        assert {"name": "keyword_filter", "kind": "function", "engine": "python"} in apps[0][
            "components"
        ]
        answer = httpx.post(
            f"{server.url}/v1/apps/keyword_answers/query",
            json={"question": "How many days of leave?", "documents": body()["documents"]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert "keyword_filter" in {p["node"] for p in answer.json()["primitives"]}
