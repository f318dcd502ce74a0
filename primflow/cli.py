"""The `primflow` command line: one sub-command per module in ``primflow.commands``.

Each command module defines ``add_parser(subparsers)`` and ``run(args) -> int``. They
are imported lazily so `primflow graph` never loads a model. The global flags, before
the command, set up logging (``-v`` / ``-q``, ``--log-format``; see
``primflow/logging_setup.py``: every log line goes to stderr) and print the version.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from importlib import metadata

from primflow.logging_setup import LOG_FORMATS, setup_logging

COMMANDS = {
    "graph": "print an application's primitive graph for a sample query",
    "simulate": "run an application on simulated engines and print latency statistics",
    "profile": "measure the embedded engines' latency profiles on this machine",
    "run": "answer questions over your documents with an application",
    "index": "index documents once into a persistent collection (for run --collection)",
    "collections": "list, show or delete persistent collections",
    "bench": "benchmark primflow against module-level baselines",
    "serve": "serve applications over HTTP (JSON, SSE, OpenAI-compatible chat)",
    "setup": "install the default model files (after pip install 'primflow[engines]')",
    "explain": "explain a query's latency: graphs, passes, critical path, the gap to its bound",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="primflow", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"primflow {version()}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more on stderr: -v info, -vv debug (default: warnings and errors)",
    )
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="log errors only (no warnings)"
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines as text, or as one JSON object per line (default: text)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        if module is not None:
            module.add_parser(sub, name, help_text)
    return parser


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    try:
        return metadata.version("primflow")
    except metadata.PackageNotFoundError:
        from primflow import __version__

        return __version__


def _command_module(name: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(f"primflow.commands.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"primflow.commands.{name}":
            return None  # not built yet
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose, args.log_format)
    module = _command_module(args.command)
    assert module is not None
    with _remote_profile_warnings_plainly():
        code: int = module.run(args)
    return code


@contextlib.contextmanager
def _remote_profile_warnings_plainly() -> Iterator[None]:
    """A missing remote profile is advice for the user: one plain line on stderr, not
    a Python warning with a source line."""
    try:
        from primflow.engines.remote.profile import RemoteProfileWarning
    except ImportError:  # no remote extra (httpx): no remote engine can warn
        yield
        return

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
