"""`primflow run APP --docs PATH --question TEXT`: answer questions over your documents.

Loads and checks every input before any model loads (a bad path, an empty folder, an
unreadable PDF or an unknown app fail fast with a message naming what is wrong and exit
code 2); then builds the embedded engines, streams each answer token by token and ends
with a per-primitive timing breakdown, the critical path marked with ``*``. ``--json``
prints one line per question instead. Exit codes: 0 ok, 2 bad input, 3 engines
unavailable, 4 a question failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primflow.api.documents import Document, DocumentError, load_documents
from primflow.apps import APPS, UnknownAppError, get_app

SCHEME_CHOICES = ("primflow", "sequential", "parallel")
PLACEMENT_CHOICES = ("shared", "dedicated")
EXIT_BAD_INPUT = 2
EXIT_ENGINES_UNAVAILABLE = 3
EXIT_QUERY_FAILED = 4


class InputError(ValueError):
    """A command-line input is unusable; the message says which and why."""


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("app", help=f"application: {', '.join(APPS)}")
    parser.add_argument("--docs", help="a file or folder of .txt, .md, .pdf, .jsonl documents")
    asked = parser.add_mutually_exclusive_group(required=True)
    asked.add_argument("--question", help="the question to answer")
    asked.add_argument(
        "--questions",
        help="a file of questions: one per line, or JSON lines with a 'question' field",
    )
    parser.add_argument(
        "--scheme",
        choices=SCHEME_CHOICES,
        default="primflow",
        help="primflow, or a module-level baseline (default: primflow)",
    )
    parser.add_argument(
        "--placement",
        choices=PLACEMENT_CHOICES,
        default="shared",
        help="cores: shared by the busy engines, or one per engine",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line per question (no streaming, no bars)",
    )
    parser.add_argument(
        "--bound",
        action="store_true",
        help="also run each question with the sequential scheme (its primitives alone) "
        "and report the uncontended critical-path lower bound",
    )
    parser.add_argument(
        "--cores",
        type=int,
        help="cores the engines may use (default: all); 1 keeps every engine at one thread, "
        "which avoids multi-second stalls when other processes load the machine",
    )
    parser.add_argument("--max-tokens", type=int, help="answer length limit (tokens)")
    parser.add_argument(
        "--profiles", type=Path, help="engine latency profiles saved by `primflow profile`"
    )


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
    changes: dict[str, Any] = {}
    if args.max_tokens is not None:
        if args.max_tokens < 1:
            raise InputError(f"--max-tokens must be >= 1, got {args.max_tokens}")
        changes["max_tokens"] = args.max_tokens
    if args.cores is not None and args.cores < 1:
        raise InputError(f"--cores must be >= 1, got {args.cores}")
    if args.profiles is not None and not args.profiles.is_file():
        raise InputError(f"profiles file {str(args.profiles)!r} does not exist")
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


def run(args: argparse.Namespace) -> int:
    try:
        inputs = read_inputs(args)
    except (InputError, DocumentError) as exc:
        print(f"primflow run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from primflow.serve.console import answer_all

    return asyncio.run(answer_all(args, inputs))
