"""`primflow index PATH --collection NAME`: chunk, embed and index documents once into a
persistent collection, for `primflow run APP --collection NAME` to query many times.

The documents are loaded and the name checked before any model loads (a bad path, an
empty folder, an unreadable PDF, a bad name: exit code 2 with the reason). A new name
creates the collection; an existing one gets the documents added (a source it already
holds is refused). Only the embedder engine starts. Exit codes: 0 ok, 2 bad input,
3 engines unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from primflow.api.documents import Document, DocumentError, load_documents
from primflow.collections import (
    Backend,
    Collection,
    CollectionError,
    CollectionStore,
    check_name,
)
from primflow.commands.store_args import add_store_arguments, started_pgvector, store_of

EXIT_BAD_INPUT = 2
EXIT_ENGINES_UNAVAILABLE = 3


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("path", help="a file or folder of .txt, .md, .pdf, .jsonl documents")
    parser.add_argument("--collection", required=True, help="the collection's name")
    parser.add_argument(
        "--backend",
        choices=[str(b) for b in Backend],
        default=str(Backend.FAISS),
        help="where a new collection keeps its vectors: FAISS files (default) or a "
        "pgvector table (needs --pgvector)",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=300, help="characters per chunk (new collections)"
    )
    parser.add_argument(
        "--chunk-overlap", type=int, default=30, help="characters of overlap (new collections)"
    )
    parser.add_argument("--cores", type=int, help="cores the embedder may use (default: all)")
    add_store_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        check_name(args.collection)
        documents = load_documents(args.path)
        if args.backend == Backend.PGVECTOR and not args.pgvector:
            raise CollectionError("--backend pgvector needs --pgvector DSN")
        if args.cores is not None and args.cores < 1:
            raise CollectionError(f"--cores must be >= 1, got {args.cores}")
    except (CollectionError, DocumentError) as exc:
        print(f"primflow index: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return asyncio.run(_index(args, documents))


async def _index(args: argparse.Namespace, documents: list[Document]) -> int:
    from primflow.collections import embedding_model_id
    from primflow.engines.base import EngineKind
    from primflow.session import EngineStack, EngineUnavailable, embedded_factory

    try:
        pgvector = await started_pgvector(args)
        stack = EngineStack(
            {"embedder": EngineKind.EMBEDDER}, embedded_factory(), num_cores=args.cores
        )
        await stack.start()
    except (EngineUnavailable, ImportError, OSError) as exc:
        print(f"primflow index: {exc}", file=sys.stderr)
        return EXIT_ENGINES_UNAVAILABLE
    try:
        embedder = stack.engines["embedder"]
        store = store_of(args, pgvector)
        started_s = time.perf_counter()
        is_new = not store.exists(args.collection)
        collection = _open_or_create(args, store, embedding_model_id(embedder))
        try:
            report = await collection.add(documents, embedder)
        except BaseException:
            if is_new:  # leave no empty collection behind
                await store.delete(args.collection)
            raise
        took_s = time.perf_counter() - started_s
    except CollectionError as exc:
        print(f"primflow index: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        await stack.close()
        if pgvector is not None:
            await pgvector.close()
    print(
        f"collection {collection.name!r}: added {report.num_documents} documents as "
        f"{report.num_chunks} chunks in {took_s:.1f} s; it holds {report.total_num_chunks} "
        f"chunks of {collection.meta.num_documents} documents ({collection.meta.backend}, "
        f"{collection.meta.embedding_model}, dim {collection.meta.dim}) in {collection.folder}"
    )
    return 0


def _open_or_create(args: argparse.Namespace, store: CollectionStore, model: str) -> Collection:
    """The named collection (its own chunking applies), or a new one with the flags'."""
    if store.exists(args.collection):
        return store.open(args.collection)
    return store.create(
        args.collection,
        embedding_model=model,
        backend=args.backend,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
    )
