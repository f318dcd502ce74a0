"""Reranking hits by their relevance to a query text, keeping the best ``top_k``.

How relevance is scored is the engine's business; the embedded reranker scores by MiniLM
cosine (``engines/rerank/``), not by a cross-encoder."""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.components.search import check_top_k
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType


class Rerank(Component):
    """Rescores ``hits`` against ``query`` with a cross-encoder and keeps the best ``top_k``.

    ``top_k`` defaults to the query's ``config.rerank_top_k``.

    Examples:
        >>> from primflow import Query, Rerank, build_template, lower
        >>> from primflow.graph.ir import PortType
        >>> rerank = Rerank(query="question", hits="hits", reranked="best", top_k=2)
        >>> template = build_template(
        ...     "rerank_only", rerank, outputs={"best": "best"}, inputs={"hits": PortType.HITS}
        ... )
        >>> graph = lower(template, Query("Which one?", inputs={"hits": []}))
        >>> graph.node("rerank").engine, graph.node("rerank").params
        ('reranker', {'top_k': 2})
    """

    kind = "rerank"
    default_engine = "reranker"
    batchable = True

    def __init__(
        self,
        name: str | None = None,
        *,
        query: str = "question",
        hits: str = "hits",
        reranked: str = "reranked",
        top_k: int | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(
            name,
            engine=engine,
            reads={"query": query, "hits": hits},
            writes={"reranked": reranked},
        )
        self.top_k = top_k

    def validate(self) -> None:
        check_top_k(self.top_k)

    def input_roles(self) -> dict[str, Role]:
        return {"query": Role((PortType.TEXT,)), "hits": Role((PortType.HITS,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("reranked",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"reranked": PortType.HITS}

    def expand(self, ctx: LoweringContext) -> None:
        query, hits = ctx.read("query"), ctx.read("hits")
        top_k = self.top_k or ctx.config.rerank_top_k
        num_kept = top_k if hits.num_items is None else min(top_k, hits.num_items)
        node = ctx.add(
            Node(
                ctx.name(),
                Op.RERANK,
                inputs=(query.port_for(ops.QUERY), hits.port_for(ops.HITS)),
                outputs=(Port(ops.HITS, PortType.HITS, num_kept),),
                engine=ctx.engine,
                params={"top_k": top_k},
                is_batchable=self.batchable,
            )
        )
        ctx.connect(query, node.name, ops.QUERY)
        ctx.connect(hits, node.name, ops.HITS)
        ctx.write("reranked", Source(node.name, ops.HITS, PortType.HITS, num_kept))
