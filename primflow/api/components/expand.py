"""Query expansion: the LLM writes ``num_expansions`` search queries as a JSON list.

The decode is splittable: its parser yields one item per query, and the engine gets a
JSON schema (a list of exactly that many strings) to constrain sampling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from primflow.api.component import Component, Role
from primflow.api.components.llm_call import Binding, DecodeSpec, add_llm_call
from primflow.api.config import PROMPT_PLACEHOLDERS, check_placeholders
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import PortType


def queries_schema(num_items: int) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": num_items,
        "maxItems": num_items,
    }


class ExpandQuery(Component):
    """The LLM rewrites ``question`` into ``num_expansions`` search queries (a JSON list).

    ``num_expansions`` defaults to the query's ``config.num_expansions``. The decode is
    splittable: decode pipelining hands each query downstream as soon as it is written.

    Examples:
        >>> from primflow import ExpandQuery, Query, QueryConfig, build_template, lower
        >>> expand = ExpandQuery(question="question", queries="queries")
        >>> template = build_template("expand_only", expand, outputs={"queries": "queries"})
        >>> graph = lower(template, Query("What is HNSW?", config=QueryConfig(num_expansions=2)))
        >>> [n.name for n in graph]
        ['input.question', 'expand.prefill', 'expand.decode', 'output.queries']
        >>> graph.node("expand.decode").params["num_items"]
        2
    """

    kind = "expand"
    default_engine = "llm"
    splittable = True

    def __init__(
        self,
        name: str | None = None,
        *,
        question: str = "question",
        queries: str = "queries",
        num_expansions: int | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(
            name, engine=engine, reads={"question": question}, writes={"queries": queries}
        )
        self.num_expansions = num_expansions

    def validate(self) -> None:
        if self.num_expansions is not None and self.num_expansions <= 0:
            raise ValueError(f"num_expansions must be > 0, got {self.num_expansions}")

    def input_roles(self) -> dict[str, Role]:
        return {"question": Role((PortType.TEXT,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("queries",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"queries": PortType.TEXTS}

    def expand(self, ctx: LoweringContext) -> None:
        num_queries = self.num_expansions or ctx.config.num_expansions
        template = ctx.config.prompts.expansion
        check_placeholders(template, *PROMPT_PLACEHOLDERS["expansion"], "prompts.expansion")
        template = template.replace("{num_expansions}", str(num_queries))
        decode = DecodeSpec(
            max_tokens=ctx.config.expansion_max_tokens,
            parser=ops.DecodeParser.JSON_LIST,
            num_items=num_queries,
            json_schema=queries_schema(num_queries),
        )
        bindings = {"question": Binding(ctx.read("question"))}
        decoder = add_llm_call(ctx, ctx.name(), template, bindings, decode)
        ctx.write("queries", Source(decoder.name, ops.ITEMS, PortType.TEXTS, num_queries))
