"""SQL for the pgvector engine: identifiers checked and quoted, values always parameters.

Invariants: no value is ever formatted into SQL text; the only names formatted in are
table names that match ``TABLE_NAME`` and are quoted with ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import hashlib
import re

from psycopg import sql

from primflow.engines.vector.common import Matrix

TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class BadIdentifier(ValueError):
    pass


def table_identifier(table: str) -> sql.Identifier:
    if not TABLE_NAME.fullmatch(table):
        raise BadIdentifier(f"table name {table!r} must match {TABLE_NAME.pattern}")
    return sql.Identifier(table)


def query_table(query_id: str, collection: str) -> str:
    """A per-query table name; query ids may hold any characters, so they are hashed."""
    digest = hashlib.sha1(f"{query_id}/{collection}".encode()).hexdigest()[:20]
    return f"pfq_{digest}"


def shared_table(collection: str) -> str:
    return f"pfs_{collection.lower()}"


def vector_literal(row: Matrix) -> str:
    return "[" + ",".join(f"{x:.8g}" for x in row.tolist()) + "]"


def create_table(table: str, dim: int) -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (row_id bigserial PRIMARY KEY, chunk_id bigint NOT NULL,"
        " source text NOT NULL, body text NOT NULL, embedding vector({}) NOT NULL)"
    ).format(table_identifier(table), sql.Literal(int(dim)))


def create_hnsw_index(table: str) -> sql.Composed:
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_cosine_ops)"
    ).format(table_identifier(f"{table}_hnsw"[:63]), table_identifier(table))


def copy_rows(table: str) -> sql.Composed:
    return sql.SQL("COPY {} (chunk_id, source, body, embedding) FROM STDIN").format(
        table_identifier(table)
    )


def search(table: str) -> sql.Composed:
    return sql.SQL(
        "SELECT chunk_id, source, body, embedding <=> %s::vector AS distance"
        " FROM {} ORDER BY distance LIMIT %s"
    ).format(table_identifier(table))


def drop_table(table: str) -> sql.Composed:
    return sql.SQL("DROP TABLE IF EXISTS {}").format(table_identifier(table))


# pgvector keeps a vector column's dimension in atttypmod.
COLUMN_DIM = (
    "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'embedding'"
)
