"""A branch: route ``value`` to ``if_true`` or ``if_false`` by an LLM's decision text.

The decision is taken when it matches ``predicate`` (case-insensitive, after trimming
punctuation; the runtime decides the exact matching). Whatever reads a branch's channel
runs only when that branch is taken, unless it reads it as an optional input.
"""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, PortType


class Condition(Component):
    """Routes ``value`` to ``if_true`` when the ``decision`` text matches ``predicate``,
    else to ``if_false``; components reading an untaken branch do not run.

    Examples:
        >>> from primflow import Condition, Judge, Query, WebSearch, build_template, lower
        >>> flow = (
        ...     Judge(decision="decision")
        ...     >> Condition(decision="decision", value="question_list", if_true="search_queries")
        ...     >> WebSearch(queries="search_queries", hits="web_hits")
        ... )
        >>> template = build_template("maybe_search", flow, outputs={"hits": "web_hits"})
        >>> template.channels["web_hits"].is_conditional
        True
        >>> lower(template, Query("Who won?")).node("condition").params
        {'predicate': 'yes'}
    """

    kind = "condition"

    def __init__(
        self,
        name: str | None = None,
        *,
        decision: str = "decision",
        value: str = "question_list",
        if_true: str | None = "if_true",
        if_false: str | None = None,
        predicate: str = "yes",
    ) -> None:
        super().__init__(
            name,
            reads={"decision": decision, "value": value},
            writes={"if_true": if_true, "if_false": if_false},
        )
        self.predicate = predicate

    def validate(self) -> None:
        if not self.predicate.strip():
            raise ValueError("predicate is empty")

    def input_roles(self) -> dict[str, Role]:
        return {"decision": Role((PortType.TEXT,)), "value": Role((PortType.ANY,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("if_true", "if_false")

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"if_true": input_types["value"], "if_false": input_types["value"]}

    def conditional_outputs(self) -> frozenset[str]:
        return frozenset({"if_true", "if_false"})

    def expand(self, ctx: LoweringContext) -> None:
        decision, value = ctx.read("decision"), ctx.read("value")
        outputs = tuple(value.port_for(p) for p in (ops.IF_TRUE, ops.IF_FALSE))
        node = ctx.add(
            Node(
                ctx.name(),
                Op.CONDITION,
                inputs=(decision.port_for(ops.DECISION), value.port_for(ops.VALUE)),
                outputs=outputs,
                params={"predicate": self.predicate},
            )
        )
        ctx.connect(decision, node.name, ops.DECISION)
        ctx.connect(value, node.name, ops.VALUE)
        for role in ("if_true", "if_false"):
            ctx.write(role, Source(node.name, role, value.type, value.num_items))
