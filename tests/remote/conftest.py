"""Fixtures for tests/remote: one real llama-cpp-python server for the module, and a
fresh one for tests that kill it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from remote_servers import LlamaServer, start_llama_server


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_llama_server(tmp_path_factory.mktemp("llama") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def doomed_server(tmp_path: Path) -> Iterator[LlamaServer]:
    server = start_llama_server(tmp_path / "doomed.log")
    try:
        yield server
    finally:
        server.stop()
