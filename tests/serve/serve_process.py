"""A real `primflow serve` in a subprocess on a free loopback port, for tests.

``ServerProcess`` starts ``python -m primflow.cli serve --port 0 ...``, reads the
port it really bound from its ``ready at`` line, waits for ``/health`` and always
stops it (SIGTERM, then SIGKILL), so no test leaves a process behind. Its output is
drained by a thread (a full pipe would block the server) and kept for messages.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"ready at (http://127\.0\.0\.1:\d+)")
MAX_START_S = 300.0  # embedded engines load models; fakes start in ~2 s


class ServerProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = ["--host", "127.0.0.1", "--port", "0", *args]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        if "--collections-dir" not in args:  # never the user's own collections
            self._collections = tempfile.TemporaryDirectory(prefix="primflow-serve-")
            self.env["PRIMFLOW_COLLECTIONS_DIR"] = self._collections.name
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "primflow.cli", "serve", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=REPO,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + MAX_START_S
        while not self.url:
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start:\n" + self.output)
            if match := READY.search(line):
                self.url = match.group(1)
        for _ in range(100):
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the server never answered /health:\n" + self.output)

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def fake_server(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
    return ServerProcess(
        "--engine-backend", "fake", "--apps", "naive_rag,search_augmented", *args, env=env
    )


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    """Terminate ``proc`` (killed if it does not end within 15 s); a no-op once ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)
