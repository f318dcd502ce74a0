"""A user's own spec on the embedded engines, from a temporary folder: `primflow run
--spec` streams the answer and prints the timing table with the custom function step
in it, and `primflow bench --spec` benchmarks it (kept tiny: one question, no load
runs). The model-free entry points (graph, simulate, bench on fakes) are in
tests/unit/test_spec_commands.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from user_flow import QUESTION, SPEC_NAME, UserFlow, write_user_flow

from primflow.cli import main

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> UserFlow:
    return write_user_flow(tmp_path_factory.mktemp("user_flow"))


def test_run_spec_streams_the_answer_and_times_the_function_step(
    flow: UserFlow, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--spec", str(flow.spec), "--import", str(flow.steps)]
    argv += ["--docs", str(flow.docs), "--question", QUESTION, "--max-tokens", "24"]
    assert main([*argv, "--cores", "1"]) == 0
    out = capsys.readouterr().out
    answer = out.split("A: ", 1)[1].split("\n\n", 1)[0]
    assert "25" in answer
    assert "passages: leave.md#0" in out
    # The timing table: "[*] primitive engine start queue service batch" per row.
    rows = [line.lstrip("* ").split() for line in out.splitlines()]
    assert ["keep", "python"] in [row[:2] for row in rows if len(row) == 6]
    assert "* = on the critical path" in out


def test_bench_spec_reports_the_spec_on_the_embedded_engines(
    flow: UserFlow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--spec", str(flow.spec), "--import", str(flow.steps)]
    argv += ["--docs", str(flow.docs), "--questions", str(flow.questions)]
    argv += ["--schemes", "primflow", "--workloads", "balanced", "--placements", "shared"]
    argv += ["--num-questions", "1", "--rates", "none", "--max-tokens", "4", "--cores", "1"]
    assert main([*argv, "--out", str(tmp_path), "--name", "spec"]) == 0
    assert f"bench_e2e: {SPEC_NAME}/balanced/shared" in capsys.readouterr().out
    report = json.loads((tmp_path / "spec.json").read_text())
    (case,) = report["cases"]
    (query,) = case["single_queries"]
    assert case["app"] == SPEC_NAME and query["bound_s"] > 0
    engines = {p["node"]: p["engine"] for p in query["timeline"]}
    assert engines["keep"] == "python" and engines["rerank"] == "reranker"
