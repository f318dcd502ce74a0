"""Fixtures: a real server on fake engines, shared by a module's scheduling tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_process import ServerProcess, fake_server

MAX_QUEUED = 4


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with fake_server("--max-queued-queries", str(MAX_QUEUED)) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/serve/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.serve)
