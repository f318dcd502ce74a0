"""Joining several channels into one: concat lists, merge hits to the best ``top_k``,
wait for all (pass the first on), take the first present (joins CONDITION branches), or
zip lists of texts/chunks item by item into one text per item."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from primflow.api.component import Component, Role
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType

Mode = ops.AggregateMode


class Aggregate(Component):
    """Joins the channels ``parts`` into ``result``: ``concat`` lists, merge hits to the
    best ``top_k``, wait for ``all``, take the ``first`` present, or ``zip_texts``.

    ``top_k`` (mode top_k) defaults to the query's ``config.rerank_top_k``. It runs inline
    in the runtime, on no engine.

    Examples:
        >>> from primflow import Aggregate, Query, build_template, lower
        >>> from primflow.graph.ir import PortType
        >>> both = Aggregate(parts=["a", "b"], result="both", mode="concat")
        >>> lists = {"a": PortType.TEXTS, "b": PortType.TEXTS}
        >>> template = build_template("join", both, outputs={"both": "both"}, inputs=lists)
        >>> graph = lower(template, Query("?", inputs={"a": ["x"], "b": ["y", "z"]}))
        >>> graph.node("aggregate").output("result").num_items
        3
    """

    kind = "aggregate"

    def __init__(
        self,
        name: str | None = None,
        *,
        parts: Sequence[str],
        result: str = "result",
        mode: Mode | str = Mode.CONCAT,
        top_k: int | None = None,
    ) -> None:
        if len(parts) < 1:
            raise ValueError("aggregate needs at least one part")
        self.mode = Mode(mode)
        self.num_parts = len(parts)
        self.top_k = top_k
        reads = {ops.part(i): channel for i, channel in enumerate(parts)}
        super().__init__(name, reads=reads, writes={"result": result})

    def validate(self) -> None:
        if self.top_k is not None and self.top_k <= 0:
            raise ValueError(f"top_k must be > 0, got {self.top_k}")

    def input_roles(self) -> dict[str, Role]:
        role = Role((PortType.ANY,), is_optional=self.mode is Mode.FIRST)
        return {ops.part(i): role for i in range(self.num_parts)}

    def output_roles(self) -> tuple[str, ...]:
        return ("result",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        if self.mode is Mode.ZIP_TEXTS:
            joinable = {PortType.TEXTS, PortType.CHUNKS}
            wrong = {k: v for k, v in input_types.items() if v not in joinable}
            if wrong:
                listed = ", ".join(f"{k}: {v}" for k, v in wrong.items())
                raise ValueError(f"mode zip_texts joins texts or chunks, got {listed}")
            return {"result": PortType.TEXTS}
        types = set(input_types.values())
        if len(types) > 1:
            listed = ", ".join(f"{k}: {v}" for k, v in input_types.items())
            raise ValueError(f"parts must have one type, got {listed}")
        part_type = types.pop() if types else PortType.ANY
        if self.mode is Mode.TOP_K and part_type is not PortType.HITS:
            raise ValueError(f"mode top_k merges hits, but the parts hold {part_type}")
        if self.mode is Mode.CONCAT and part_type is PortType.TEXT:
            return {"result": PortType.TEXTS}  # texts concatenate into a list
        return {"result": part_type}

    def expand(self, ctx: LoweringContext) -> None:
        parts = [ctx.read(ops.part(i)) for i in range(self.num_parts)]
        result_type = self.output_types({ops.part(i): p.type for i, p in enumerate(parts)})
        num_items = self._num_items(ctx, parts)
        params: dict[str, object] = {"mode": str(self.mode)}
        if self.mode is Mode.TOP_K:
            params["top_k"] = self.top_k or ctx.config.rerank_top_k
        is_optional = self.mode is Mode.FIRST
        port_type = result_type["result"]
        node = ctx.add(
            Node(
                ctx.name(),
                Op.AGGREGATE,
                inputs=tuple(
                    p.port_for(ops.part(i), None, is_optional) for i, p in enumerate(parts)
                ),
                outputs=(Port(ops.RESULT, port_type, num_items if port_type.is_list else None),),
                params=params,
            )
        )
        for i, part in enumerate(parts):
            ctx.connect(part, node.name, ops.part(i))
        ctx.write("result", Source(node.name, ops.RESULT, port_type, num_items))

    def _num_items(self, ctx: LoweringContext, parts: list[Source]) -> int | None:
        sizes = [p.num_items if p.type.is_list else 1 for p in parts]
        if any(s is None for s in sizes):
            return None
        known = [s for s in sizes if s is not None]
        if self.mode is Mode.CONCAT:
            return sum(known)
        if self.mode is Mode.TOP_K:
            return min(self.top_k or ctx.config.rerank_top_k, sum(known))
        return known[0] if self.mode is Mode.ALL else max(known)
