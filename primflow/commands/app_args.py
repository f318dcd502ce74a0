"""Which app a command runs: a built-in name, or ``--spec FILE`` with ``--import``.

Owns the ``app`` / ``--spec`` / ``--import`` arguments that `primflow run`, `graph`,
`bench` and `simulate` share, and :func:`chosen_app`, which turns them into an
:class:`~primflow.apps.App`. Invariants: modules named by ``--import`` are imported
before the spec loads (the spec's ``kind: function`` steps name functions those
modules register; the spec itself runs no code); every failure is an
:class:`AppChoiceError` whose message names the argument, the file and the field.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from primflow.api.spec import SpecError
from primflow.api.user_modules import UserModuleError, import_user_modules
from primflow.apps import APPS, App, UnknownAppError, get_app, is_spec_path, spec_app


class AppChoiceError(ValueError):
    """The app arguments are unusable; the message says which and why."""


def add_app_arguments(parser: argparse.ArgumentParser, extra_names: Iterable[str] = ()) -> None:
    """The optional positional ``app`` (a built-in name or a spec file), ``--spec``
    and ``--import``."""
    names = ", ".join([*APPS, *extra_names])
    parser.add_argument("app", nargs="?", help=f"application: {names}; or a .yaml/.json spec file")
    parser.add_argument(
        "--spec",
        type=Path,
        help="your own workflow: a YAML/JSON spec file (docs/guide/yaml.md), instead of an app",
    )
    add_import_argument(parser)


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="a Python module (dotted name) or .py file to import first: it defines the "
        "@primflow.function steps a spec names (repeatable)",
    )


def import_modules(entries: Iterable[str]) -> None:
    """Import each ``--import`` entry (:func:`primflow.api.user_modules.import_user_modules`)."""
    try:
        import_user_modules(entries)
    except UserModuleError as exc:
        raise AppChoiceError(f"--import {exc}") from None


def chosen_app(args: argparse.Namespace) -> App:
    """The app the arguments name (``--spec FILE``, a spec path, or a built-in name)."""
    import_modules(getattr(args, "imports", None) or [])
    spec = getattr(args, "spec", None)
    name = getattr(args, "app", None)
    if spec is not None and name:
        raise AppChoiceError(f"give an app ({name!r}) or --spec FILE, not both")
    if spec is None and name and is_spec_path(name):
        spec = Path(name)
    if spec is not None:
        return load_spec_app(spec)
    if not name:
        raise AppChoiceError(f"name an app ({', '.join(APPS)}) or pass --spec FILE")
    try:
        return get_app(name)
    except UnknownAppError as exc:
        raise AppChoiceError(f"{exc}; or pass --spec FILE for your own workflow") from None


def load_spec_app(path: Path, import_flag: str = "--import") -> App:
    """The spec file's app; a spec naming an unregistered function says which module
    to pass to ``import_flag``."""
    try:
        return spec_app(path)
    except SpecError as exc:
        if exc.unregistered_function is not None:
            module = exc.unregistered_function.split(":", 1)[0]
            raise AppChoiceError(f"{exc}; pass {import_flag} {module} (or its .py file)") from None
        raise AppChoiceError(str(exc)) from None
