"""Embedding a list of texts or chunks into vectors (one row per item)."""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType


class Embed(Component):
    """Embeds a list of texts or chunks (``items``) into ``vectors``, one row per item.

    Runs on the ``embedder`` engine unless ``engine=`` names another; batchable (its items
    are independent, so stage decomposition may split it).

    Examples:
        >>> from primflow import Embed, Query, build_template, lower
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> template = build_template("embed_question", embed, outputs={"vectors": "vectors"})
        >>> [(n.name, n.engine) for n in lower(template, Query("What is HNSW?"))]
        [('input.question_list', None), ('embed', 'embedder'), ('output.vectors', None)]
    """

    kind = "embed"
    default_engine = "embedder"
    batchable = True
    splittable = True

    def __init__(
        self,
        name: str | None = None,
        *,
        items: str = "items",
        vectors: str = "vectors",
        engine: str | None = None,
    ) -> None:
        super().__init__(name, engine=engine, reads={"items": items}, writes={"vectors": vectors})

    def input_roles(self) -> dict[str, Role]:
        return {"items": Role((PortType.TEXTS, PortType.CHUNKS))}

    def output_roles(self) -> tuple[str, ...]:
        return ("vectors",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"vectors": PortType.VECTORS}

    def expand(self, ctx: LoweringContext) -> None:
        items = ctx.read("items")
        node = ctx.add(
            Node(
                ctx.name(),
                Op.EMBED,
                inputs=(items.port_for(ops.ITEMS),),
                outputs=(Port(ops.VECTORS, PortType.VECTORS, items.num_items),),
                engine=ctx.engine,
                is_batchable=self.batchable,
                is_splittable=self.splittable,
            )
        )
        ctx.connect(items, node.name, ops.ITEMS)
        ctx.write("vectors", Source(node.name, ops.VECTORS, PortType.VECTORS, items.num_items))
