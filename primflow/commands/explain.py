"""`primflow explain APP --docs PATH --question TEXT`: why a query took as long as it did.

Runs the question on the embedded engines (then its sequential reference, for the
uncontended bound; ``--no-bound`` skips it) and prints the p-graph and e-graph side by
side, what each pass changed, every primitive's times, the measured critical path, the
time per engine and the gap to the bound by cause. ``--from-json FILE`` explains a
saved explanation (``--save FILE``) or a `primflow run --json` result instead, with no
engines. ``--html FILE`` also writes the trace page. Exit codes as `primflow run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from primflow.commands.app_args import add_app_arguments
from primflow.commands.engine_options import add_engine_options, add_engines_option
from primflow.commands.store_args import add_store_arguments

EXIT_BAD_INPUT = 2


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_app_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--docs", help="a file or folder of .txt, .md, .pdf, .jsonl documents")
    source.add_argument("--collection", help="a collection made by `primflow index`")
    parser.add_argument("--question", help="the question to answer and explain")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="explain a saved explanation (--save) or a `primflow run --json` result",
    )
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write the trace page")
    parser.add_argument("--save", type=Path, metavar="FILE", help="save the explanation (JSON)")
    parser.add_argument(
        "--no-bound",
        action="store_true",
        help="skip the sequential reference run (no uncontended bound, no gap)",
    )
    parser.add_argument(
        "--trace",
        choices=("off", "console", "otlp"),
        help="also export OpenTelemetry spans (default: $PRIMFLOW_TRACE, else off)",
    )
    add_engine_options(parser)
    add_store_arguments(parser)
    add_engines_option(parser)


def run(args: argparse.Namespace) -> int:
    from primflow.explain import ExplainFormatError, Explanation

    try:
        if args.from_json is not None:
            explanation = _from_json(args)
        else:
            inputs = _live_inputs(args)
            from primflow.commands.explain_run import explain_live

            code, live = asyncio.run(explain_live(args, inputs))
            if live is None:
                return code
            explanation = live
    except (_BadInput, ExplainFormatError) as exc:
        print(f"primflow explain: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return _report(args, explanation, Explanation)


class _BadInput(ValueError):
    pass


def _from_json(args: argparse.Namespace) -> Any:
    from primflow.explain import Explanation, explain_run_json

    if args.app or args.spec or args.docs or args.collection or args.question:
        raise _BadInput("--from-json takes no app, --docs, --collection or --question")
    path: Path = args.from_json
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _BadInput(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        data = json.loads(text) if len(lines) != 1 else json.loads(lines[0])
    except json.JSONDecodeError:
        if len(lines) > 1:
            raise _BadInput(
                f"{str(path)!r} holds {len(lines)} JSON lines; explain takes one result "
                "(keep the line of the question you want)"
            ) from None
        raise _BadInput(f"{str(path)!r} is not JSON") from None
    if isinstance(data, dict) and "format" in data:
        return Explanation.from_json(data)
    return explain_run_json(data)


def _live_inputs(args: argparse.Namespace) -> Any:
    from primflow.api.documents import DocumentError
    from primflow.collections import CollectionError
    from primflow.commands.app_args import AppChoiceError
    from primflow.commands.engine_options import OptionError, check_model_options
    from primflow.commands.run_inputs import InputError, check_engines_file, read_inputs

    if not args.app and not args.spec:
        raise _BadInput("name an app or --spec FILE (or pass --from-json FILE)")
    if not args.question:
        raise _BadInput("pass --question TEXT (or --from-json FILE)")
    args.questions = None
    try:
        check_model_options(args)
        inputs = read_inputs(args)
        check_engines_file(args.engines)
    except (AppChoiceError, OptionError, InputError, DocumentError, CollectionError) as exc:
        raise _BadInput(str(exc)) from None
    return inputs


def _report(args: argparse.Namespace, explanation: Any, explanation_type: Any) -> int:
    from primflow.explain import format_explanation

    sys.stdout.write(format_explanation(explanation))
    if args.save is not None:
        args.save.write_text(json.dumps(explanation.to_json(), indent=1) + "\n", encoding="utf-8")
        print(f"saved the explanation to {args.save}", file=sys.stderr)
    if args.html is not None:
        from primflow.explain.html import PlotlyUnavailable, render_page

        try:
            args.html.write_text(render_page(explanation), encoding="utf-8")
        except PlotlyUnavailable as exc:
            print(f"primflow explain: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"wrote the trace page to {args.html}", file=sys.stderr)
    return 0
