"""The `primflow` command line: one sub-command per module in ``primflow.commands``.

Each command module defines ``add_parser(subparsers)`` and ``run(args) -> int``. They
are imported lazily so `primflow graph` never loads a model.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "graph": "print an application's primitive graph for a sample query",
    "simulate": "run an application on simulated engines and print latency statistics",
    "profile": "measure the embedded engines' latency profiles on this machine",
    "run": "answer questions over your documents with an application",
    "index": "index documents once into a persistent collection (for run --collection)",
    "collections": "list, show or delete persistent collections",
    "bench": "benchmark primflow against module-level baselines",
    "serve": "serve applications over HTTP (JSON, SSE, OpenAI-compatible chat)",
    "explain": "explain a query's latency: graphs, passes, critical path, the gap to its bound",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="primflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        if module is not None:
            module.add_parser(sub, name, help_text)
    return parser


def _command_module(name: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(f"primflow.commands.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"primflow.commands.{name}":
            return None  # not built yet
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = _command_module(args.command)
    assert module is not None
    code: int = module.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
