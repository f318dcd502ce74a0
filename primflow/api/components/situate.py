"""Contextual chunks (Anthropic's contextual retrieval): the LLM situates each chunk.

For chunk i the LLM sees the chunk and its ``num_neighbours`` neighbours (half before,
half after) and writes a short context for it; an AGGREGATE (concat) joins the contexts
in chunk order, and an AGGREGATE (zip_texts) puts each context before its chunk's text,
as Anthropic's method embeds it: item i of ``situated`` is "context i + blank line +
chunk i". Only the embedding sees that text: the ingest still stores the original
chunks, so hits and answers quote the chunk text.
"""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.components.llm_call import Binding, DecodeSpec, add_llm_call, text_of
from primflow.api.config import PROMPT_PLACEHOLDERS, check_placeholders
from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType


class Situate(Component):
    """Contextual retrieval: one LLM call per chunk writes a sentence situating the chunk
    in its document (from ``config.num_neighbours`` chunks around it), as ``situated``.

    Examples:
        >>> from primflow import ChunkDocuments, Op, Query, QueryConfig, Situate
        >>> from primflow import build_template, lower
        >>> flow = ChunkDocuments(chunks="chunks") >> Situate(chunks="chunks", situated="situated")
        >>> template = build_template("situate_only", flow, outputs={"situated": "situated"})
        >>> config = QueryConfig(chunk_size=10, chunk_overlap=0)
        >>> graph = lower(template, Query("?", ["one two three four"], config))
        >>> [n.name for n in graph.nodes_with_op(Op.LLM_DECODE)]
        ['situate.0.decode', 'situate.1.decode']
    """

    kind = "situate"
    default_engine = "llm"

    def __init__(
        self,
        name: str | None = None,
        *,
        chunks: str = "chunks",
        situated: str = "situated",
        engine: str | None = None,
    ) -> None:
        super().__init__(
            name, engine=engine, reads={"chunks": chunks}, writes={"situated": situated}
        )

    def input_roles(self) -> dict[str, Role]:
        return {"chunks": Role((PortType.CHUNKS,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("situated",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"situated": PortType.TEXTS}

    def expand(self, ctx: LoweringContext) -> None:
        chunks = ctx.read("chunks")
        if not chunks.num_items:
            raise ctx.error("needs a chunk list of known length")
        template = ctx.config.prompts.situate
        check_placeholders(template, *PROMPT_PLACEHOLDERS["situate"], "prompts.situate")
        decode = DecodeSpec(max_tokens=ctx.config.situate_max_tokens)
        texts = [
            text_of(
                add_llm_call(ctx, ctx.name(i), template, self._bindings(ctx, chunks, i), decode)
            )
            for i in range(chunks.num_items)
        ]
        contexts = concat(ctx, ctx.name("join"), texts)
        ctx.write("situated", zip_texts(ctx, ctx.name("text"), [contexts, chunks]))

    def _bindings(self, ctx: LoweringContext, chunks: Source, i: int) -> dict[str, Binding]:
        assert chunks.num_items is not None
        before = (ctx.config.num_neighbours + 1) // 2
        after = ctx.config.num_neighbours - before
        window = (max(0, i - before), min(chunks.num_items, i + after + 1))
        return {"neighbours": Binding(chunks, window), "chunk": Binding(chunks, (i, i + 1))}


def concat(ctx: LoweringContext, name: str, texts: list[Source]) -> Source:
    """AGGREGATE(concat) of text parts into a list of texts, in part order."""
    node = ctx.add(
        Node(
            name,
            Op.AGGREGATE,
            inputs=tuple(t.port_for(ops.part(i)) for i, t in enumerate(texts)),
            outputs=(Port(ops.RESULT, PortType.TEXTS, len(texts)),),
            params={"mode": str(ops.AggregateMode.CONCAT)},
        )
    )
    for i, text in enumerate(texts):
        ctx.connect(text, node.name, ops.part(i))
    return Source(node.name, ops.RESULT, PortType.TEXTS, len(texts))


def zip_texts(ctx: LoweringContext, name: str, parts: list[Source]) -> Source:
    """AGGREGATE(zip_texts): item i = the parts' items i joined into one text."""
    num_items = parts[0].num_items
    node = ctx.add(
        Node(
            name,
            Op.AGGREGATE,
            inputs=tuple(p.port_for(ops.part(i)) for i, p in enumerate(parts)),
            outputs=(Port(ops.RESULT, PortType.TEXTS, num_items),),
            params={"mode": str(ops.AggregateMode.ZIP_TEXTS)},
        )
    )
    for i, part in enumerate(parts):
        ctx.connect(part, node.name, ops.part(i))
    return Source(node.name, ops.RESULT, PortType.TEXTS, num_items)
