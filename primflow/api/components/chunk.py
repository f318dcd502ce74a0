"""Chunking the query's documents: lowering cuts them and feeds the chunks in as an INPUT.

The graph's shape depends on the chunk count, so chunking happens at lowering time,
with the query's ``chunk_size`` and ``chunk_overlap``.
"""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component
from primflow.api.documents import chunk_documents
from primflow.api.expansion import LoweringContext
from primflow.graph.ir import PortType


class ChunkDocuments(Component):
    """Cuts the query's documents into chunks when the query is lowered (with its
    ``config.chunk_size`` and ``chunk_overlap``) and writes them to ``chunks``.

    Examples:
        >>> from primflow import ChunkDocuments, Query, QueryConfig, build_template, lower_query
        >>> chunk = ChunkDocuments(chunks="chunks")
        >>> template = build_template("chunk_only", chunk, outputs={"chunks": "chunks"})
        >>> config = QueryConfig(chunk_size=10, chunk_overlap=0)
        >>> query = Query("?", ["one two three four five six"], config)
        >>> [c.text for c in lower_query(template, query).inputs["chunks"]]
        ['one two', 'three four', 'five six']
    """

    kind = "chunk"

    def __init__(self, name: str | None = None, *, chunks: str = "chunks") -> None:
        super().__init__(name, writes={"chunks": chunks})

    def output_roles(self) -> tuple[str, ...]:
        return ("chunks",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"chunks": PortType.CHUNKS}

    def expand(self, ctx: LoweringContext) -> None:
        if not ctx.query.documents:
            raise ctx.error("the query brings no documents to chunk")
        config = ctx.config
        chunks = chunk_documents(ctx.query.documents, config.chunk_size, config.chunk_overlap)
        key = self.writes["chunks"] or "chunks"
        ctx.write("chunks", ctx.add_input(key, PortType.CHUNKS, chunks, len(chunks)))
