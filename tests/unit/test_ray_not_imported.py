"""The in-process default path never imports Ray (it is an optional extra)."""

from __future__ import annotations

import subprocess
import sys

# Builds the default stack and runs a query on the fakes; prints any ray module loaded.
SCRIPT = """
import asyncio, sys
from primflow.apps import get_app
from primflow.session import Session, fake_factory
from primflow.session.engine_config import config_factory, parse_engine_config
from primflow.session.stack import EngineStack

async def main():
    app = get_app("naive_rag")
    query = app.sample_query()
    config = parse_engine_config({"engines": {"embedder": {"backend": "embedded"}}}, "<t>")
    factory = config_factory(config, fake_factory(0.0))
    async with EngineStack.for_apps(["naive_rag"], factory) as stack, Session(stack) as s:
        await s.ask("naive_rag", query.question, list(query.documents))

asyncio.run(main())
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""


def test_the_in_process_path_does_not_import_ray() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
