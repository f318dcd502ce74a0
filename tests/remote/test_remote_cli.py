"""The issue's done-when, as a user runs it: `primflow run advanced_rag --engines FILE`
in a subprocess, with the LLM on a real llama-cpp-python server and the engine file
the guide shows (docs/examples/remote.yaml, its base_url pointed at the test's server).
The timing table must show the prefix warm-ups (``*.prefill.partial`` on the remote
LLM) and the partial decodes of the expanded queries (``expand.decode.p<i>``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from remote_servers import LlamaServer

pytestmark = [pytest.mark.remote, pytest.mark.engines]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "remote.yaml"
QUESTION = "What does the paper report about end-to-end speedup?"
CLI_TIMEOUT_S = 600
# "  name   engine   start s   queue s   service s   batch" (a leading "*" marks the
# critical path).
ROW = re.compile(r"^[* ] (\S+)\s+(\S+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+$", re.MULTILINE)


def engine_file_for(server: LlamaServer, tmp_path: Path) -> Path:
    config = yaml.safe_load(EXAMPLE.read_text())
    config["engines"]["llm"]["base_url"] = server.base_url
    path = tmp_path / "remote.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def primflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "primflow.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_run_advanced_rag_through_the_server_shows_warm_ups_and_partial_decodes(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    engines = engine_file_for(llama_server, tmp_path)
    start = len(llama_server.log())
    docs = str(ROOT / "samples" / "docs")
    done = primflow(
        "run", "advanced_rag", "--engines", str(engines), "--docs", docs,
        "--question", QUESTION, "--max-tokens", "16", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^A: \S", done.stdout, re.MULTILINE), done.stdout
    engine_of = dict(ROW.findall(done.stdout))
    warm_ups = [n for n, e in engine_of.items() if n.endswith(".prefill.partial") and e == "llm"]
    items = sorted(n for n, e in engine_of.items() if re.fullmatch(r"expand\.decode\.p\d", n))
    assert warm_ups, done.stdout
    assert items == ["expand.decode.p0", "expand.decode.p1", "expand.decode.p2"], done.stdout
    assert all(engine_of[n] == "llm" for n in items)
    # The rows are real requests: the server saw a one-token warm-up reused by a later
    # prompt, and no measured profile was claimed for the remote LLM.
    assert re.search(r"prefix-match hit", llama_server.log()[start:])
    assert "remote engine 'llm' has no measured latency profile" in done.stderr
