"""`primflow serve`: serve applications over HTTP on one embedded engine stack.

Options come from flags over ``--config FILE`` (YAML or JSON: a mapping whose keys are
the flag names, ``max-queued-queries`` or ``max_queued_queries``) over the defaults of
:class:`~primflow.serve.settings.ServeSettings`; so every flag here defaults to None
("not given"). Bad options fail before any model loads, with exit code 2. The API key
may come from ``PRIMFLOW_API_KEY`` instead of a flag, so it stays out of process
listings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from primflow.apps import APPS
from primflow.commands.engine_options import (
    OptionError,
    add_engine_options,
    add_engines_option,
    check_engine_options,
)
from primflow.commands.store_args import add_store_arguments

EXIT_BAD_INPUT = 2
# Flag destinations that are not ServeSettings fields of the same name.
RENAMED = {"cores": "num_cores", "engines": "engines_file"}
PATH_OPTIONS = frozenset({"profiles", "engines", "collections_dir", "llm_model", "embed_model"})
NOT_SETTINGS = frozenset({"config", "max_tokens", "command", "api_key"})


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_serve_options(parser)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    from primflow.serve.settings import ENGINE_BACKENDS

    parser.add_argument("--config", type=Path, help="a YAML or JSON file of these options")
    parser.add_argument(
        "--apps",
        help=f"comma-separated apps to serve: built-in names ({', '.join(APPS)}) and/or "
        "YAML/JSON spec files; default naive_rag",
    )
    parser.add_argument(
        "--imports",
        help="comma-separated Python modules to import first: those defining the @function "
        "steps that spec files name (kind: function)",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    add_engine_options(parser, placement_default=None)
    add_engines_option(parser)
    add_store_arguments(parser)
    # fake: model-free fakes with test controls under /_testing (tests, trying the API).
    parser.add_argument("--engine-backend", choices=ENGINE_BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--fake-latency-scale", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--max-queued-queries",
        type=int,
        help="queries queued plus running (default 64); beyond it: 429 with Retry-After",
    )
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        help="on SIGTERM/SIGINT, how long running queries may take before they are "
        "cancelled (default 30)",
    )
    parser.add_argument(
        "--api-key", help="require 'Authorization: Bearer KEY' (or set PRIMFLOW_API_KEY)"
    )
    parser.add_argument("--max-body-bytes", type=int, help="JSON body limit (default 1 MiB)")
    parser.add_argument("--max-upload-bytes", type=int, help="upload limit (default 32 MiB)")


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
        if dest not in known or dest == "config":
            raise OptionError(f"config file {str(path)!r}: unknown option {key!r}")
        if dest == "apps" and isinstance(value, list):
            value = ",".join(map(str, value))
        if dest in PATH_OPTIONS and value is not None:
            value = Path(value)
        options[dest] = value
    return options


def merged_options(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given, over the config file's options."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    if args.config is None:
        return given
    return {**read_config(args.config, set(vars(args))), **given}


def _entries(text: object) -> tuple[str, ...]:
    if isinstance(text, list):
        text = ",".join(map(str, text))
    return tuple(part.strip() for part in str(text).split(",") if part.strip())


def app_entries(text: str, imports: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The ``--apps`` entries, each checked (a spec file is loaded and validated)."""
    from primflow.api.spec import SpecError
    from primflow.apps import UnknownAppError
    from primflow.serve.apps import resolve_apps

    entries = _entries(text)
    if not entries:
        raise OptionError("--apps: name at least one app")
    try:
        resolve_apps(entries, imports)
    except (UnknownAppError, SpecError, ValueError) as exc:
        raise OptionError(f"--apps: {exc}") from None
    return entries


def settings_from(args: argparse.Namespace) -> Any:
    from primflow.serve.settings import API_KEY_ENV, ServeSettings

    options = merged_options(args)
    checked = argparse.Namespace(
        max_tokens=options.get("max_tokens"),
        cores=options.get("cores"),
        profiles=options.get("profiles"),
        llm_model=options.get("llm_model"),
        embed_model=options.get("embed_model"),
    )
    changes = check_engine_options(checked)
    _check_engines_file(options.get("engines"))
    names = {f.name for f in fields(ServeSettings)}
    values: dict[str, Any] = {}
    for dest, value in options.items():
        name = RENAMED.get(dest, dest)
        if name in names and dest not in NOT_SETTINGS:
            values[name] = value
    if "imports" in values:
        values["imports"] = _entries(values["imports"])
    if "apps" in values or "imports" in values:
        values["apps"] = app_entries(values.get("apps", "naive_rag"), values.get("imports", ()))
    api_key = options.get("api_key") or os.environ.get(API_KEY_ENV)
    try:
        return ServeSettings(**values, config_changes=changes, api_key=api_key or None)
    except (TypeError, ValueError) as exc:
        raise OptionError(str(exc)) from None


def _check_engines_file(path: Path | None) -> None:
    """Validate ``--engines FILE`` before any model loads (the stack reads it again)."""
    if path is None:
        return
    from primflow.session.engine_config import EngineConfigError, load_engine_config

    try:
        load_engine_config(path)
    except EngineConfigError as exc:
        raise OptionError(f"--engines: {exc}") from None


def run(args: argparse.Namespace) -> int:
    try:
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
    code: int = serve(settings)
    return code
