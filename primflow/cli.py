"""The `primflow` command line: one sub-command per module in ``primflow.commands``.

Each command module defines ``add_parser(subparsers)`` and ``run(args) -> int``. They
are imported lazily so `primflow graph` never loads a model.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator, Sequence

COMMANDS = {
    "graph": "print an application's primitive graph for a sample query",
    "simulate": "run an application on simulated engines and print latency statistics",
    "profile": "measure the embedded engines' latency profiles on this machine",
    "run": "answer questions over your documents with an application",
    "index": "index documents once into a persistent collection (for run --collection)",
    "collections": "list, show or delete persistent collections",
    "bench": "benchmark primflow against module-level baselines",
    "serve": "serve applications over HTTP (JSON, SSE, OpenAI-compatible chat)",
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
    with _remote_profile_warnings_plainly():
        code: int = module.run(args)
    return code


@contextlib.contextmanager
def _remote_profile_warnings_plainly() -> Iterator[None]:
    """A missing remote profile is advice for the user: one plain line on stderr, not
    a Python warning with a source line."""
    from primflow.engines.remote.profile import RemoteProfileWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, RemoteProfileWarning):
            print(f"primflow: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
