"""Ingesting chunks and their vectors into a vector collection of the query."""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType


class Ingest(Component):
    """Adds ``chunks`` and their ``vectors`` to a per-query collection of the vector index
    (``collection``, default: the component's name) and writes the ``index`` a search reads.

    Examples:
        >>> from primflow import ChunkDocuments, Embed, Ingest, build_template
        >>> flow = (
        ...     ChunkDocuments(chunks="chunks")
        ...     >> Embed(items="chunks", vectors="vectors")
        ...     >> Ingest(chunks="chunks", vectors="vectors", index="index")
        ... )
        >>> template = build_template("index_docs", flow, outputs={"index": "index"})
        >>> template.channels["index"].writer, template.component("ingest").engine
        ('ingest', 'vector_index')
    """

    kind = "ingest"
    default_engine = "vector_index"
    batchable = True

    def __init__(
        self,
        name: str | None = None,
        *,
        chunks: str = "chunks",
        vectors: str = "vectors",
        index: str = "index",
        collection: str | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(
            name,
            engine=engine,
            reads={"chunks": chunks, "vectors": vectors},
            writes={"index": index},
        )
        self.collection = collection or self.name

    def input_roles(self) -> dict[str, Role]:
        return {"chunks": Role((PortType.CHUNKS,)), "vectors": Role((PortType.VECTORS,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("index",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"index": PortType.INDEX}

    def expand(self, ctx: LoweringContext) -> None:
        chunks, vectors = ctx.read("chunks"), ctx.read("vectors")
        if (
            None not in (chunks.num_items, vectors.num_items)
            and chunks.num_items != vectors.num_items
        ):
            raise ctx.error(
                f"ingests {chunks.num_items} chunks with {vectors.num_items} vectors; "
                "they must pair up one to one"
            )
        node = ctx.add(
            Node(
                ctx.name(),
                Op.VECTOR_INGEST,
                inputs=(chunks.port_for(ops.CHUNKS), vectors.port_for(ops.VECTORS)),
                outputs=(Port(ops.INDEX, PortType.INDEX),),
                engine=ctx.engine,
                params={"collection": self.collection},
                is_batchable=self.batchable,
            )
        )
        ctx.connect(chunks, node.name, ops.CHUNKS)
        ctx.connect(vectors, node.name, ops.VECTORS)
        ctx.write(
            "index", Source(node.name, ops.INDEX, PortType.INDEX, index_size=chunks.num_items)
        )
