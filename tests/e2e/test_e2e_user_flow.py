"""The issue's done-when, as a new user does it, in a temporary folder: a YAML spec with
one custom ``kind: function`` step (a keyword filter after the search, in a ``.py``
module of the user's), the user's own two documents, and the shipped SmolLM2 GGUF
*copied* into the folder as the user's own model file. The same flow runs three ways:

(a) `primflow run --spec --import --llm-model --docs` in a subprocess: the answer, the
    timing table with the custom step's row, and (``--json``) the optimizer's fields;
(b) from Python: the spec's app on an EngineStack with the copied model, streamed with
    ``async for event in session.stream(...)``: tokens before the answer;
(c) `primflow serve --apps SPEC --imports FILE --llm-model COPY` on a free loopback
    port (always stopped): a POSTed query answers, the custom step in its timing.

Lean: two short documents, answers of at most 24 tokens, one core.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from user_flow import MODULE, QUESTION, SPEC_NAME, UserFlow, write_user_flow

from primflow.api.user_modules import import_user_modules
from primflow.apps import spec_app
from primflow.engines.llm.model import default_model_path
from primflow.session import (
    AnswerEvent,
    EmbeddedSettings,
    EngineStack,
    Session,
    TokenEvent,
    embedded_factory,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MAX_TOKENS = "24"
CUSTOM_STEP = "keep"  # the spec's kind: function step


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> UserFlow:
    return write_user_flow(tmp_path_factory.mktemp("new_user"))


@pytest.fixture(scope="module")
def my_model(flow: UserFlow) -> Path:
    path = flow.folder / "models" / "my-assistant.gguf"
    path.parent.mkdir()
    shutil.copyfile(default_model_path(), path)
    return path


def _primflow(flow: UserFlow, *argv: str) -> subprocess.CompletedProcess[str]:
    """`primflow ARGV` in a subprocess started in the user's folder."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "primflow.cli", *argv],
        cwd=flow.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _run_args(flow: UserFlow, my_model: Path) -> list[str]:
    return [
        "run", "--spec", "flow.yaml", "--import", f"{MODULE}.py", "--llm-model", str(my_model),
        "--docs", "docs", "--question", QUESTION, "--max-tokens", MAX_TOKENS, "--cores", "1",
    ]  # fmt: skip


def test_run_spec_prints_the_answer_and_the_timing_table(flow: UserFlow, my_model: Path) -> None:
    done = _primflow(flow, *_run_args(flow, my_model))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "25" in out.split("A: ", 1)[1].split("\n\n", 1)[0]
    rows = [line.lstrip("* ").split() for line in out.splitlines()]
    assert [CUSTOM_STEP, "python"] in [row[:2] for row in rows if len(row) == 6]
    assert "* = on the critical path" in out
    as_json = _primflow(flow, *_run_args(flow, my_model), "--json")
    assert as_json.returncode == 0, as_json.stderr
    (line,) = as_json.stdout.splitlines()
    record = json.loads(line)
    assert record["app"] == SPEC_NAME and "25" in record["answer"]
    # The passes ran on the user's graph: the optimizer's time and cache state are
    # reported, and the custom step is a timed primitive on the function engine.
    assert record["optimize_s"] > 0 and record["optimize_cache_hit"] is False
    assert {"node": CUSTOM_STEP, "engine": "python"}.items() <= next(
        p for p in record["primitives"] if p["node"] == CUSTOM_STEP
    ).items()


async def test_python_streams_the_spec_app_on_the_users_model(
    flow: UserFlow, my_model: Path
) -> None:
    import_user_modules([str(flow.steps)])
    app = spec_app(flow.spec)
    documents = [p.read_text() for p in sorted(flow.docs.iterdir())]
    factory = embedded_factory(EmbeddedSettings(llm_model_path=str(my_model), n_ctx=2048))
    stack = EngineStack.for_apps([app], factory, num_cores=1)
    events = []
    async with stack, Session(stack) as session:
        changes = {"max_tokens": int(MAX_TOKENS)}
        async for event in session.stream(app, QUESTION, documents, config_changes=changes):
            events.append(event)
    *running, last = events
    assert isinstance(last, AnswerEvent)
    tokens = [e for e in running if isinstance(e, TokenEvent)]
    assert len(tokens) > 1
    assert "".join(t.text for t in tokens).strip() == last.answer.text
    assert "25" in last.answer.text
    assert CUSTOM_STEP in {p.node for p in last.answer.timing.primitives}


def test_serve_answers_the_spec_on_the_users_model(flow: UserFlow, my_model: Path) -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    sys.path.insert(0, str(REPO / "tests" / "serve"))
    from serve_process import ServerProcess

    args = ("--apps", str(flow.spec), "--imports", str(flow.steps), "--llm-model", str(my_model))
    with ServerProcess(*args, "--cores", "1") as server:
        apps = httpx.get(f"{server.url}/v1/apps").json()["apps"]
        assert [a["name"] for a in apps] == [SPEC_NAME]
        documents = [{"text": p.read_text(), "source": p.name} for p in sorted(flow.docs.iterdir())]
        config = {"max_tokens": int(MAX_TOKENS)}
        body = {"question": QUESTION, "documents": documents, "config": config}
        reply = httpx.post(f"{server.url}/v1/apps/{SPEC_NAME}/query", json=body, timeout=600)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert "25" in answer["answer"]
        assert CUSTOM_STEP in {p["node"] for p in answer["primitives"]}
