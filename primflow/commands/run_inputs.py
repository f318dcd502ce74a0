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
from primflow.apps import UnknownAppError, get_app
from primflow.commands.engine_options import OptionError, check_engine_options


class InputError(ValueError):
    """A command-line input is unusable; the message says which and why."""


@dataclass(frozen=True)
class RunInputs:
    app: str
    questions: list[str]
    documents: list[Document]
    config_changes: dict[str, Any]


def read_inputs(args: argparse.Namespace) -> RunInputs:
    """Everything the run needs from disk, checked; raises InputError / DocumentError."""
    try:
        app = get_app(args.app)
    except UnknownAppError as exc:
        raise InputError(str(exc)) from None
    needs_documents = any(c.kind == "chunk" for c in app.template().components)
    documents: list[Document] = []
    if args.docs:
        documents = load_documents(args.docs)
    elif needs_documents:
        raise InputError(f"app {app.name!r} answers from documents: pass --docs PATH")
    questions = [args.question] if args.question is not None else read_questions(args.questions)
    if any(not q.strip() for q in questions):
        raise InputError("a question is empty")
    try:
        changes = check_engine_options(args)
    except OptionError as exc:
        raise InputError(str(exc)) from None
    return RunInputs(app.name, questions, documents, changes)


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
