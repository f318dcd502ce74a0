"""Web search: the ``top_k`` best pages for each query text."""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.components.search import check_top_k
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType


class WebSearch(Component):
    """Searches the web for each of ``queries`` and writes the ``top_k`` best ``hits``.

    ``top_k`` defaults to the query's ``config.web_top_k``.

    Examples:
        >>> from primflow import Query, WebSearch, build_template, lower
        >>> search = WebSearch(queries="question_list", hits="web_hits", top_k=4)
        >>> template = build_template("web", search, outputs={"hits": "web_hits"})
        >>> graph = lower(template, Query("Who won the 1921 Nobel Prize in Physics?"))
        >>> graph.node("web_search").output("hits").num_items
        4
    """

    kind = "web_search"
    default_engine = "web_search"
    batchable = True

    def __init__(
        self,
        name: str | None = None,
        *,
        queries: str = "question_list",
        hits: str = "web_hits",
        top_k: int | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(name, engine=engine, reads={"queries": queries}, writes={"hits": hits})
        self.top_k = top_k

    def validate(self) -> None:
        check_top_k(self.top_k)

    def input_roles(self) -> dict[str, Role]:
        return {"queries": Role((PortType.TEXTS,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("hits",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"hits": PortType.HITS}

    def expand(self, ctx: LoweringContext) -> None:
        queries = ctx.read("queries")
        top_k = self.top_k or ctx.config.web_top_k
        num_hits = None if queries.num_items is None else queries.num_items * top_k
        node = ctx.add(
            Node(
                ctx.name(),
                Op.WEB_SEARCH,
                inputs=(queries.port_for(ops.QUERIES),),
                outputs=(Port(ops.HITS, PortType.HITS, num_hits),),
                engine=ctx.engine,
                params={"top_k": top_k},
                is_batchable=self.batchable,
            )
        )
        ctx.connect(queries, node.name, ops.QUERIES)
        ctx.write("hits", Source(node.name, ops.HITS, PortType.HITS, num_hits))
