"""The engine options `primflow run` and `primflow serve` share, defined once.

Owns the argparse definitions of ``--placement``, ``--cores``, ``--max-tokens`` and
``--profiles`` and their checks (:func:`check_engine_options`), so both commands take
and validate them the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

PLACEMENT_CHOICES = ("shared", "dedicated")


class OptionError(ValueError):
    """An engine option is unusable; the message names the option and why."""


def add_engine_options(
    parser: argparse.ArgumentParser, placement_default: str | None = "shared"
) -> None:
    """``placement_default=None`` lets a caller tell "not given" from "shared"."""
    parser.add_argument(
        "--placement",
        choices=PLACEMENT_CHOICES,
        default=placement_default,
        help="cores: shared by the busy engines (default), or one per engine",
    )
    parser.add_argument(
        "--cores",
        type=int,
        help="cores the engines may use (default: all); 1 keeps every engine at one thread, "
        "which avoids multi-second stalls when other processes load the machine",
    )
    parser.add_argument("--max-tokens", type=int, help="answer length limit (tokens)")
    parser.add_argument(
        "--profiles", type=Path, help="engine latency profiles saved by `primflow profile`"
    )


def add_engines_option(parser: argparse.ArgumentParser) -> None:
    """``--engines FILE``: the engine stack file (remote servers, embedded engines)."""
    parser.add_argument(
        "--engines",
        type=Path,
        metavar="FILE",
        help="a YAML engine stack: which engines run on OpenAI-compatible servers "
        "(docs/guide/remote-engines.md); engines it does not list run embedded",
    )


def check_engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """Raise OptionError for a bad value; return the per-query config changes they set."""
    changes: dict[str, Any] = {}
    if args.max_tokens is not None:
        if args.max_tokens < 1:
            raise OptionError(f"--max-tokens must be >= 1, got {args.max_tokens}")
        changes["max_tokens"] = args.max_tokens
    if args.cores is not None and args.cores < 1:
        raise OptionError(f"--cores must be >= 1, got {args.cores}")
    if args.profiles is not None and not Path(args.profiles).is_file():
        raise OptionError(f"profiles file {str(args.profiles)!r} does not exist")
    return changes
