"""Which applications a server serves: built-in names and YAML/JSON spec files.

``resolve_apps`` turns each ``--apps`` entry into an :class:`~primflow.apps.App`: a
built-in app by name, or a spec file (``.yaml``/``.yml``/``.json``, read once at
startup by the operator's command, never from a request) as an app named by its spec.
Invariant: names are unique in a server, since routes and caches key apps by name.
A spec's ``kind: function`` steps name functions registered by ``@function``; the
operator's ``--imports`` modules are imported first, so they are (a spec itself runs
no code).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

from primflow.api.spec import load_spec
from primflow.apps import App, get_app
from primflow.apps.samples import sample_documents

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SPEC_SAMPLE_QUESTION = "What do the documents say about annual leave?"


def is_spec_entry(entry: str) -> bool:
    return entry.lower().endswith(SPEC_SUFFIXES)


def spec_app(path: Path) -> App:
    template = load_spec(path)  # SpecError names the file and the field at fault
    return App(
        name=template.name,
        build=lambda: template,
        description=f"from the spec {path.name}",
        sample_question=SPEC_SAMPLE_QUESTION,
        sample_documents=sample_documents,
    )


def import_modules(modules: Iterable[str]) -> None:
    """Import the operator's modules (they register ``@function`` components)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure of the user's module is an option error
            raise ValueError(f"cannot import module {module!r}: {exc}") from None


def resolve_apps(entries: Iterable[str], imports: Iterable[str] = ()) -> dict[str, App]:
    """Apps by name, after importing ``imports``; raises UnknownAppError, SpecError, or
    ValueError (a clash, a module that does not import)."""
    import_modules(imports)
    apps: dict[str, App] = {}
    for entry in entries:
        app = spec_app(Path(entry)) if is_spec_entry(entry) else get_app(entry)
        if app.name in apps:
            raise ValueError(f"two apps are named {app.name!r}; names must be unique")
        apps[app.name] = app
    return apps
