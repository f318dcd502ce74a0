"""Vector search: the ``top_k`` nearest items of an index for each query vector."""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType


def check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be > 0, got {top_k}")


class VectorSearch(Component):
    """The ``top_k`` nearest chunks of ``index`` for each query vector, as ``hits``.

    ``top_k`` defaults to the query's ``config.top_k``.

    Examples:
        >>> from primflow import ChunkDocuments, Embed, Ingest, Query, VectorSearch
        >>> from primflow import build_template, lower
        >>> flow = (
        ...     ChunkDocuments(chunks="chunks")
        ...     >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        ...     >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
        ...     >> Embed("embed_question", items="question_list", vectors="question_vectors")
        ...     >> VectorSearch(vectors="question_vectors", index="index", hits="hits", top_k=2)
        ... )
        >>> template = build_template("retrieve", flow, outputs={"hits": "hits"})
        >>> graph = lower(template, Query("Which one?", ["A first passage.", "A second one."]))
        >>> graph.node("search").params, graph.parents("search")
        ({'top_k': 2}, ['embed_question', 'ingest'])
    """

    kind = "search"
    default_engine = "vector_index"
    batchable = True
    splittable = True

    def __init__(
        self,
        name: str | None = None,
        *,
        vectors: str = "vectors",
        index: str = "index",
        hits: str = "hits",
        top_k: int | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(
            name, engine=engine, reads={"vectors": vectors, "index": index}, writes={"hits": hits}
        )
        self.top_k = top_k

    def validate(self) -> None:
        check_top_k(self.top_k)

    def input_roles(self) -> dict[str, Role]:
        return {"vectors": Role((PortType.VECTORS,)), "index": Role((PortType.INDEX,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("hits",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"hits": PortType.HITS}

    def expand(self, ctx: LoweringContext) -> None:
        vectors, index = ctx.read("vectors"), ctx.read("index")
        top_k = self.top_k or ctx.config.top_k
        per_query = top_k if index.index_size is None else min(top_k, index.index_size)
        num_hits = None if vectors.num_items is None else vectors.num_items * per_query
        node = ctx.add(
            Node(
                ctx.name(),
                Op.VECTOR_SEARCH,
                inputs=(vectors.port_for(ops.VECTORS), index.port_for(ops.INDEX)),
                outputs=(Port(ops.HITS, PortType.HITS, num_hits),),
                engine=ctx.engine,
                params={"top_k": top_k},
                is_batchable=self.batchable,
                is_splittable=self.splittable,
            )
        )
        ctx.connect(vectors, node.name, ops.VECTORS)
        ctx.connect(index, node.name, ops.INDEX)
        ctx.write("hits", Source(node.name, ops.HITS, PortType.HITS, num_hits))
