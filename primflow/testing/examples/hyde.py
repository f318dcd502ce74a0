"""A user's own component, HyDE, and an app built on it.

HyDE (hypothetical document embeddings): instead of embedding the question, the LLM
writes ``num_passages`` short passages that would answer it, and those are embedded
for the search, so the index matches answers against answers. The component lowers
to existing primitives only: an LLM call (prefill, then a decode whose JSON list parser
yields one item per passage) and an EMBED of the items on the ``embedder`` engine. As
the decode is splittable and EMBED batchable, the passes pipeline it like a query
expansion: each passage is embedded and searched as soon as it is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from primflow import (
    App,
    ChunkDocuments,
    Component,
    Embed,
    Ingest,
    QueryConfig,
    Synthesize,
    Template,
    VectorSearch,
    build_template,
)
from primflow.api import Binding, DecodeSpec, LoweringContext, Role, Source, add_llm_call
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType

HYDE_PROMPT = (
    "Write {num_passages} short passages that answer the question, as a JSON list of "
    "strings.\nQuestion: {question}\nPassages:"
)


def passages_schema(num_passages: int) -> dict[str, Any]:
    """Constrains the decode to a JSON list of exactly ``num_passages`` strings."""
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": num_passages,
        "maxItems": num_passages,
    }


class HypotheticalPassages(Component):
    """question -> vectors of ``num_passages`` hypothetical answer passages."""

    kind = "hyde"
    default_engine = "llm"
    splittable = True

    def __init__(
        self,
        name: str | None = None,
        *,
        question: str = "question",
        vectors: str = "vectors",
        num_passages: int = 2,
        max_tokens: int = 96,
        engine: str | None = None,
        embedder: str = "embedder",
    ) -> None:
        super().__init__(
            name, engine=engine, reads={"question": question}, writes={"vectors": vectors}
        )
        self.num_passages = num_passages
        self.max_tokens = max_tokens
        self.embedder = embedder

    def validate(self) -> None:
        if self.num_passages <= 0 or self.max_tokens <= 0:
            raise ValueError("num_passages and max_tokens must be > 0")

    def input_roles(self) -> dict[str, Role]:
        return {"question": Role((PortType.TEXT,))}

    def output_roles(self) -> tuple[str, ...]:
        return ("vectors",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"vectors": PortType.VECTORS}

    def engine_names(self) -> tuple[str, ...]:
        return (*super().engine_names(), self.embedder)

    def expand(self, ctx: LoweringContext) -> None:
        num = self.num_passages
        decode = DecodeSpec(
            max_tokens=self.max_tokens,
            parser=ops.DecodeParser.JSON_LIST,
            num_items=num,
            json_schema=passages_schema(num),
        )
        prompt = HYDE_PROMPT.replace("{num_passages}", str(num))
        bindings = {"question": Binding(ctx.read("question"))}
        decoder = add_llm_call(ctx, ctx.name("write"), prompt, bindings, decode)
        passages = Source(decoder.name, ops.ITEMS, PortType.TEXTS, num)
        embed = ctx.add(
            Node(
                ctx.name("embed"),
                Op.EMBED,
                inputs=(passages.port_for(ops.ITEMS),),
                outputs=(Port(ops.VECTORS, PortType.VECTORS, num),),
                engine=self.embedder,
                is_batchable=True,
                is_splittable=True,
            )
        )
        ctx.connect(passages, embed.name, ops.ITEMS)
        ctx.write("vectors", Source(embed.name, ops.VECTORS, PortType.VECTORS, num))


def build_hyde_rag() -> Template:
    """naive RAG with HyDE in place of embedding the question."""
    flow = (
        ChunkDocuments(chunks="chunks")
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
        >> HypotheticalPassages("hyde", question="question", vectors="hyde_vectors")
        >> VectorSearch(vectors="hyde_vectors", index="index", hits="hits")
        >> Synthesize(question="question", context="hits", answer="answer")
    )
    return build_template("hyde_rag", flow, outputs={"answer": "answer", "hits": "hits"})


HYDE_RAG = App(
    "hyde_rag",
    build_hyde_rag,
    description="document QA: search with the embeddings of hypothetical answers",
    default_config=QueryConfig(top_k=2),
)
