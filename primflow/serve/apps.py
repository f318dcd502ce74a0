"""Which applications a server serves: built-in names and YAML/JSON spec files.

``resolve_apps`` turns each ``--apps`` entry into an :class:`~primflow.apps.App`: a
built-in app by name, or a spec file (``.yaml``/``.yml``/``.json``, read once at
startup by the operator's command, never from a request) as an app named by its spec.
Both go through the loaders every other command uses: :func:`primflow.apps.spec_app`
for spec files and :func:`primflow.api.user_modules.import_user_modules` for the
operator's ``--imports`` (dotted modules or ``.py`` files), imported first so the
spec's ``kind: function`` steps find their registered functions (a spec itself runs
no code). Invariant: names are unique in a server, since routes and caches key apps
by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from primflow.api.spec import SpecError
from primflow.api.user_modules import UserModuleError, import_user_modules
from primflow.apps import App, get_app, is_spec_path, spec_app


def served_spec_app(path: Path) -> App:
    """The spec file's app; a spec naming an unregistered function says which module
    to pass to ``--imports``."""
    try:
        return spec_app(path)
    except SpecError as exc:
        if exc.unregistered_function is None:
            raise
        module = exc.unregistered_function.split(":", 1)[0]
        raise SpecError(
            f"{exc}; pass --imports {module} (or its .py file)", exc.unregistered_function
        ) from None


def resolve_apps(entries: Iterable[str], imports: Iterable[str] = ()) -> dict[str, App]:
    """Apps by name, after importing ``imports``; raises UnknownAppError, SpecError, or
    ValueError (a clash, a module that does not import)."""
    try:
        import_user_modules(imports)
    except UserModuleError as exc:
        raise ValueError(f"--imports {exc}") from None
    apps: dict[str, App] = {}
    for entry in entries:
        app = served_spec_app(Path(entry)) if is_spec_path(entry) else get_app(entry)
        if app.name in apps:
            raise ValueError(f"two apps are named {app.name!r}; names must be unique")
        apps[app.name] = app
    return apps
