"""`primflow serve`: serve applications over HTTP on one embedded engine stack.

Options come from flags and, with ``--config FILE`` (YAML or JSON), from a mapping
whose keys are the flag names (``max-queued-queries`` or ``max_queued_queries``);
a flag given on the command line with a value other than its default wins. Bad
options fail before any model loads with exit code 2. The API key may come from
``PRIMFLOW_API_KEY`` instead of a flag, so it stays out of process listings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from primflow.apps import APPS
from primflow.commands.engine_options import OptionError, add_engine_options, check_engine_options

EXIT_BAD_INPUT = 2
SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_serve_options(parser)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    from primflow.serve.settings import DEFAULT_HOST, DEFAULT_PORT, ENGINE_CHOICES

    parser.add_argument("--config", type=Path, help="a YAML or JSON file of these options")
    parser.add_argument(
        "--apps",
        default="naive_rag",
        help=f"comma-separated apps to serve (built-in: {', '.join(APPS)}); default naive_rag",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    add_engine_options(parser)
    parser.add_argument(
        "--engines",
        choices=ENGINE_CHOICES,
        default="embedded",
        help="embedded: the real small models; fake: model-free fakes with test controls "
        "under /_testing (for tests and trying the API)",
    )
    parser.add_argument("--fake-latency-scale", type=float, default=0.01, help=argparse.SUPPRESS)
    parser.add_argument(
        "--max-queued-queries",
        type=int,
        default=64,
        help="queries queued plus running; beyond it a query gets 429 with Retry-After",
    )
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        default=30.0,
        help="on SIGTERM/SIGINT, how long running queries may take before they are cancelled",
    )
    parser.add_argument(
        "--api-key", help="require 'Authorization: Bearer KEY' (or set PRIMFLOW_API_KEY)"
    )
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20, help="JSON body limit")
    parser.add_argument(
        "--max-upload-bytes", type=int, default=32 << 20, help="document upload limit"
    )


def with_config(args: argparse.Namespace) -> argparse.Namespace:
    """The config file's options, for every option the command line left at its default."""
    parser = argparse.ArgumentParser(prog="primflow serve")
    add_serve_options(parser)
    defaults = vars(parser.parse_args([]))
    merged = vars(args).copy()
    for dest, value in read_config(args.config, set(defaults)).items():
        if merged.get(dest) == defaults[dest]:
            merged[dest] = value
    return argparse.Namespace(**merged)


def read_config(path: Path, known: set[str]) -> dict[str, Any]:
    if not path.is_file():
        raise OptionError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (ValueError, ImportError) as exc:
        raise OptionError(f"cannot read config file {str(path)!r}: {exc}") from None
    if not isinstance(data, dict):
        raise OptionError(f"config file {str(path)!r} must hold a mapping of options")
    options: dict[str, Any] = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known or dest in ("config", "help"):
            raise OptionError(f"config file {str(path)!r}: unknown option {key!r}")
        if dest == "apps" and isinstance(value, list):
            value = ",".join(map(str, value))
        if dest == "profiles" and value is not None:
            value = Path(value)
        options[dest] = value
    return options


def app_names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in str(text).split(",") if part.strip())
    for name in names:
        if name.endswith(SPEC_SUFFIXES):
            raise OptionError(
                f"--apps {name!r}: serving a YAML/JSON spec file needs Session support for "
                "user templates, which this version lacks; serve built-in apps: " + ", ".join(APPS)
            )
        if name not in APPS:
            raise OptionError(f"--apps: unknown app {name!r}; known apps: {', '.join(APPS)}")
    if not names:
        raise OptionError("--apps: name at least one app")
    return names


def settings_from(args: argparse.Namespace) -> Any:
    from primflow.serve.settings import API_KEY_ENV, ServeSettings

    changes = check_engine_options(args)
    try:
        return ServeSettings(
            apps=app_names(args.apps),
            host=args.host,
            port=args.port,
            placement=args.placement,
            num_cores=args.cores,
            profiles=args.profiles,
            config_changes=changes,
            engines=args.engines,
            fake_latency_scale=args.fake_latency_scale,
            max_queued_queries=args.max_queued_queries,
            drain_timeout_s=args.drain_timeout_s,
            api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
            max_body_bytes=args.max_body_bytes,
            max_upload_bytes=args.max_upload_bytes,
        )
    except ValueError as exc:
        raise OptionError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    try:
        if args.config is not None:
            args = with_config(args)
        settings = settings_from(args)
    except (OptionError, ValueError) as exc:
        print(f"primflow serve: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from primflow.serve.runner import serve
    except ImportError as exc:
        print(
            f"primflow serve: the server needs the serve extra ({exc}); "
            "install it with pip install -e '.[serve]'",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return serve(settings)
