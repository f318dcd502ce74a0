"""The inputs of `primflow run`, read from disk and checked before any model loads.

Owns :class:`RunInputs` and its readers; every failure is an :class:`InputError` (or a
:class:`~primflow.api.documents.DocumentError`) whose message names the input and why.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primflow.api.documents import Document, load_documents
from primflow.api.indexed import without_indexing
from primflow.api.template import TemplateError
from primflow.apps import App
from primflow.collections import Backend, Collection
from primflow.commands.app_args import AppChoiceError, chosen_app
from primflow.commands.engine_options import OptionError, check_engine_options
from primflow.commands.store_args import store_of


class InputError(ValueError):
    """A command-line input is unusable; the message says which and why."""


@dataclass(frozen=True)
class RunInputs:
    app: App
    questions: list[str]
    documents: list[Document]
    config_changes: dict[str, Any]
    collection: Collection | None = None


def read_inputs(args: argparse.Namespace) -> RunInputs:
    """Everything the run needs from disk, checked; raises InputError / DocumentError."""
    try:
        app = chosen_app(args)
    except AppChoiceError as exc:
        raise InputError(str(exc)) from None
    needs_documents = any(c.kind == "chunk" for c in app.template().components)
    documents: list[Document] = []
    collection = None
    if getattr(args, "collection", None):
        collection = read_collection(args, app)
    elif args.docs:
        documents = load_documents(args.docs)
    elif needs_documents:
        raise InputError(
            f"app {app.name!r} answers from documents: pass --docs PATH or --collection NAME"
        )
    questions = [args.question] if args.question is not None else read_questions(args.questions)
    if any(not q.strip() for q in questions):
        raise InputError("a question is empty")
    try:
        changes = check_engine_options(args)
    except OptionError as exc:
        raise InputError(str(exc)) from None
    return RunInputs(app, questions, documents, changes, collection)


def read_collection(args: argparse.Namespace, app: App) -> Collection:
    """The ``--collection`` to query, checked: it exists, holds chunks, and the app can
    read a collection (raises CollectionError / InputError)."""
    try:
        without_indexing(app.template())
    except TemplateError as exc:
        raise InputError(f"app {app.name!r} cannot answer from a collection: {exc}") from None
    collection = store_of(args).open(args.collection)
    if collection.meta.num_chunks == 0:
        raise InputError(f"collection {collection.name!r} is empty: run `primflow index` first")
    if collection.meta.backend is Backend.PGVECTOR and not args.pgvector:
        raise InputError(f"collection {collection.name!r} is stored in PostgreSQL: pass --pgvector")
    return collection


def read_questions(path_text: str) -> list[str]:
    path = Path(path_text)
    if not path.is_file():
        raise InputError(f"questions file {path_text!r} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read questions file {path_text!r}: {exc}") from None
    questions: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path_text!r} line {number} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict) or not isinstance(record.get("question"), str):
                raise InputError(f"{path_text!r} line {number}: no string 'question' field")
            questions.append(record["question"])
        else:
            questions.append(line.strip())
    if not questions:
        raise InputError(f"questions file {path_text!r} has no questions")
    return questions


def check_engines_file(path: Path | None) -> None:
    """Validate ``--engines FILE`` before any model loads (the stack reads it again)."""
    if path is None:
        return
    from primflow.session.engine_config import EngineConfigError, load_engine_config

    try:
        load_engine_config(path)
    except EngineConfigError as exc:
        raise InputError(str(exc)) from None
