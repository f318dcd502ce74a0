"""A user's workflow spec file as an :class:`~primflow.apps.App`, for every entry point.

``spec_app(path)`` loads a YAML/JSON spec (``primflow.api.spec``: validated, no code
runs) into an app named by its spec, so `primflow run`, `graph`, `bench` and
`simulate` take a spec exactly as they take a built-in app: the same lowering, passes,
scheduling, streaming and timing table. Invariants: the file is read once (the app's
``build`` returns that template); a spec's sample query, which `graph` and `simulate`
use when no question is given, is a generic question over the sample documents.
"""

from __future__ import annotations

from pathlib import Path

from primflow.api.spec import load_spec
from primflow.apps.app import App
from primflow.apps.samples import sample_documents

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SPEC_SAMPLE_QUESTION = "What do the documents say?"


def is_spec_path(text: str | Path) -> bool:
    """Whether an app argument names a spec file (by its suffix) rather than an app."""
    return str(text).lower().endswith(SPEC_SUFFIXES)


def spec_app(path: str | Path) -> App:
    """The app a spec file describes; a bad spec raises ``SpecError`` naming the file
    and the field (``steps[2].top_k: must be > 0``).

    Examples:
        >>> from pathlib import Path
        >>> from primflow.apps import spec_app
        >>> from primflow.apps.samples import samples_dir
        >>> app = spec_app(samples_dir() / "specs" / "search_augmented.json")
        >>> app.name, [c.kind for c in app.template().components]
        ('search_augmented', ['judge', 'condition', 'web_search', 'generate'])
    """
    file = Path(path)
    template = load_spec(file)
    return App(
        name=template.name,
        build=lambda: template,
        description=f"from the spec {file.name}",
        sample_question=SPEC_SAMPLE_QUESTION,
        sample_documents=sample_documents,
    )
