"""`primflow collections [list | show NAME | delete NAME]`: the persistent collections
that `primflow index` made (see primflow/collections). No model loads. Exit codes: 0 ok,
2 unknown collection or bad name."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from primflow.collections import Backend, CollectionError, CollectionStore
from primflow.commands.store_args import add_store_arguments, started_pgvector, store_of

EXIT_BAD_INPUT = 2


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("action", nargs="?", choices=("list", "show", "delete"), default="list")
    parser.add_argument("name", nargs="?", help="the collection (for show and delete)")
    add_store_arguments(parser)


def run(args: argparse.Namespace) -> int:
    store = store_of(args)
    try:
        if args.action == "list":
            _print_list(store)
            return 0
        if args.name is None:
            raise CollectionError(f"`primflow collections {args.action}` needs a NAME")
        if args.action == "show":
            meta = store.open(args.name).meta
            print(json.dumps(meta.to_json(), indent=2))
            return 0
        asyncio.run(_delete(args, args.name))
    except CollectionError as exc:
        print(f"primflow collections: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"deleted collection {args.name!r}")
    return 0


def _print_list(store: CollectionStore) -> None:
    metas = store.list()
    if not metas:
        print(f"no collections in {store.root}")
        return
    print(f"{'name':<24} {'backend':<9} {'docs':>5} {'chunks':>7} {'dim':>4}  updated")
    for meta in metas:
        print(
            f"{meta.name:<24} {meta.backend!s:<9} {meta.num_documents:>5} {meta.num_chunks:>7}"
            f" {meta.dim or '-':>4}  {meta.updated_at}"
        )
    print(f"({len(metas)} in {store.root})")


async def _delete(args: argparse.Namespace, name: str) -> None:
    pgvector = None
    if store_of(args).open(name).meta.backend is Backend.PGVECTOR:
        if not args.pgvector:
            raise CollectionError(f"collection {name!r} is stored in PostgreSQL: pass --pgvector")
        pgvector = await started_pgvector(args)
    try:
        await store_of(args, pgvector).delete(name)
    finally:
        if pgvector is not None:
            await pgvector.close()
