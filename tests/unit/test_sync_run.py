"""primflow.run on the fakes: from a plain script (no event loop), the refusal inside a
running loop, and bad documents named clearly. The real-engine run is in
tests/engines/test_python_api.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from primflow import run
from primflow.session import fake_factory

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
from pathlib import Path
import sys

from primflow import run
from primflow.session import fake_factory

answer = run("naive_rag", "How much leave?", Path(sys.argv[1]),
             factory=fake_factory(latency_scale=0.0))
print(answer.app, answer.passages[0].chunk.source, answer.text)
"""


def test_run_answers_from_a_plain_script(tmp_path: Path) -> None:
    (tmp_path / "leave.txt").write_text("Employees get 25 days of leave.", encoding="utf-8")
    script = tmp_path / "ask.py"
    script.write_text(SCRIPT, encoding="utf-8")
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("naive_rag leave.txt Answer")


async def test_run_inside_a_running_loop_points_to_await_session_ask() -> None:
    with pytest.raises(RuntimeError, match=r"await session\.ask\(app, question, documents\)"):
        run("naive_rag", "How much leave?", ["Employees get 25 days."], factory=fake_factory())


def test_a_str_for_documents_is_refused_with_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"pathlib\.Path"):
        run("naive_rag", "How much leave?", "samples/docs", factory=fake_factory())  # type: ignore[arg-type]
