"""Which applications a server serves: built-in names and YAML/JSON spec files.

``resolve_apps`` turns each ``--apps`` entry into an :class:`~primflow.apps.App`: a
built-in app by name, or a spec file (``.yaml``/``.yml``/``.json``, read once at
startup by the operator's command, never from a request) as an app named by its spec.
Invariant: names are unique in a server, since routes and caches key apps by name.
"""

from __future__ import annotations

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


def resolve_apps(entries: Iterable[str]) -> dict[str, App]:
    """Apps by name; raises UnknownAppError, SpecError, or ValueError for a clash."""
    apps: dict[str, App] = {}
    for entry in entries:
        app = spec_app(Path(entry)) if is_spec_entry(entry) else get_app(entry)
        if app.name in apps:
            raise ValueError(f"two apps are named {app.name!r}; names must be unique")
        apps[app.name] = app
    return apps
