"""`primflow run APP --docs PATH --question TEXT`: answer questions over your documents
(or `--collection NAME`: over a collection `primflow index` made, skipping indexing).
`primflow run --spec FLOW.yaml [--import STEPS.py] ...` runs a workflow of your own the
same way (passes, scheduling, streaming, timing table).

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
import sys
from typing import Any

from primflow.api.documents import DocumentError
from primflow.collections import CollectionError
from primflow.commands.app_args import add_app_arguments
from primflow.commands.engine_options import (
    add_engine_options,
    add_engines_option,
    add_sampling_options,
)
from primflow.commands.run_inputs import InputError, check_engines_file, read_inputs
from primflow.commands.store_args import add_store_arguments

SCHEME_CHOICES = ("primflow", "sequential", "parallel")
EXIT_BAD_INPUT = 2
EXIT_ENGINES_UNAVAILABLE = 3
EXIT_QUERY_FAILED = 4


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_app_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--docs", help="a file or folder of .txt, .md, .pdf, .jsonl documents")
    source.add_argument(
        "--collection", help="a collection made by `primflow index` (no indexing at query time)"
    )
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
    add_engine_options(parser)
    add_sampling_options(parser)
    add_store_arguments(parser)
    add_engines_option(parser)


def run(args: argparse.Namespace) -> int:
    try:
        inputs = read_inputs(args)
        check_engines_file(args.engines)
    except (InputError, DocumentError, CollectionError) as exc:
        print(f"primflow run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from primflow.commands.console import answer_all

    return asyncio.run(answer_all(args, inputs))
