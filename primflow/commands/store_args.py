"""The command-line options that say where collections live, shared by `primflow index`,
`primflow collections` and `primflow run --collection`: ``--collections-dir`` (default
``$PRIMFLOW_COLLECTIONS_DIR`` or the user's data folder) and ``--pgvector DSN`` (a
PostgreSQL server with pgvector that holds pgvector collections' rows)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from primflow.collections import CollectionStore


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collections-dir",
        type=Path,
        help="where collections live (default: $PRIMFLOW_COLLECTIONS_DIR, else "
        "primflow/collections in your user data folder)",
    )
    parser.add_argument(
        "--pgvector",
        metavar="DSN",
        help="a PostgreSQL+pgvector connection string; pgvector collections keep their "
        "rows there (FAISS collections need no server)",
    )


def store_of(args: argparse.Namespace, pgvector: Any = None) -> CollectionStore:
    return CollectionStore(args.collections_dir, pgvector=pgvector)


async def started_pgvector(args: argparse.Namespace) -> Any:
    """A started pgvector engine for ``--pgvector``, or None without it."""
    if not args.pgvector:
        return None
    from primflow.engines.vector.pgvector_engine import PgVectorEngine

    engine = PgVectorEngine("vector_index", dsn=args.pgvector)
    await engine.start()
    return engine
