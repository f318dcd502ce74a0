"""Importing users' modules: those that register the ``@function`` steps a spec names.

Owns :func:`import_user_modules`, the one loader behind `primflow run/graph/bench/
simulate --import` and `primflow serve --imports`. An entry is a ``.py`` file (its
folder joins ``sys.path``, so a process-pool engine's workers can import it by name too)
or a dotted module name. Invariant: every failure is a :class:`UserModuleError` whose
message names the entry and what went wrong; a spec itself never runs code, so these
imports are the only user code a command runs before the query.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path


class UserModuleError(ValueError):
    """A user's module cannot be imported; the message names the entry and why."""


def is_file_entry(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or "\\" in entry


def import_user_modules(entries: Iterable[str]) -> None:
    """Import each entry (a ``.py`` file or a dotted module name), in order."""
    for entry in entries:
        module = _module_name(entry)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise UserModuleError(f"{entry!r}: no module named {module!r}") from None
            raise UserModuleError(f"{entry!r}: importing it failed: {exc}") from None
        except Exception as exc:  # the user's module raised while importing
            raise UserModuleError(f"{entry!r}: importing it failed: {exc!r}") from None


def _module_name(entry: str) -> str:
    """The module to import for ``entry``; a file's folder is put on ``sys.path``."""
    if not is_file_entry(entry):
        return entry
    file = Path(entry)
    if not file.is_file():
        raise UserModuleError(f"{entry!r}: no such file")
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return file.stem
