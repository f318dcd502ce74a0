"""Start and stop real OpenAI-compatible servers for tests: llama-cpp-python's
``python -m llama_cpp.server`` on loopback with the shipped SmolLM2 GGUF.

Every server is its own process group and is always terminated (then killed), so a
failing test leaves no orphan holding a port or a core.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

MODEL_ALIAS = "smollm2"
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_llama_server(log_path: Path, *, is_cache_enabled: bool = True) -> LlamaServer:
    """``is_cache_enabled``: keep older prompts' KV in RAM (``--cache``) so a request
    reuses the longest prefix it shares with any of them, not only with the last one."""
    from primflow.engines.llm.model import default_model_path

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        default_model_path(),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        "1",
        # Without these, a streamed answer is cut short whenever another request waits,
        # and only the previous request's prompt can be reused (docs/guide/remote-engines.md).
        "--interrupt_requests",
        "false",
        "--cache",
        "true" if is_cache_enabled else "false",
        "--verbose",
        "true",  # the prefix-match and disconnect lines the tests read
    ]
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = LlamaServer(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited early:\n{server.log()[-2000:]}")
        try:
            if httpx.get(f"{server.base_url}/v1/models", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"llama_cpp.server did not answer in {START_TIMEOUT_S} s")
