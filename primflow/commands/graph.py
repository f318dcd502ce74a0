"""`primflow graph APP`: print an application's p-graph (or, with --optimized, its
e-graph) for the app's sample query, or for --question/--docs given here."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from primflow.api.config import Query
from primflow.api.documents import DocumentError, load_documents
from primflow.api.lower import LoweringError, lower_query
from primflow.apps import APPS, UnknownAppError, get_app
from primflow.engines.profile import load_profiles
from primflow.graph.ir import Graph
from primflow.graph.printers import to_dot, to_json, to_mermaid, to_text
from primflow.passes import optimize

FORMATS = ("text", "json", "dot", "mermaid")


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("app", help=f"application: {', '.join(APPS)}")
    parser.add_argument(
        "--optimized", action="store_true", help="show the e-graph after the optimization passes"
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument("--question", help="use this question instead of the sample one")
    parser.add_argument("--docs", help="a file or folder of documents instead of the samples")
    parser.add_argument(
        "--profiles",
        type=Path,
        help="engine latency profiles (JSON from `primflow profile`) for the passes",
    )


def build_graph(args: argparse.Namespace) -> Graph:
    app = get_app(args.app)
    query = app.sample_query()
    if args.question or args.docs:
        documents = load_documents(args.docs) if args.docs else query.documents
        query = Query(args.question or query.question, documents, query.config)
    lowered = lower_query(app.template(), query)
    profiles = load_profiles(args.profiles) if args.profiles else None
    graph = lowered.graph
    if args.optimized:
        graph, _ = optimize(graph, profiles)
    if lowered.growth is None:
        return graph
    # An app with a loop: grown with its sample decisions, each round optimized on its
    # own as a run would append it.
    round_optimizer = (lambda g, _key: optimize(g, profiles)) if args.optimized else None
    lowered.growth.attach(graph, round_optimizer)
    return lowered.growth.unroll(app.sample_decisions)


def render(graph: Graph, fmt: str, name: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(graph), indent=2) + "\n"
    if fmt == "dot":
        return to_dot(graph, name)
    if fmt == "mermaid":
        return to_mermaid(graph)
    return to_text(graph)


def run(args: argparse.Namespace) -> int:
    try:
        graph = build_graph(args)
    except (UnknownAppError, DocumentError, LoweringError, ValueError, OSError) as exc:
        print(f"primflow graph: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(graph, args.format, args.app))
    return 0
