"""Per-query configuration and data: what a query brings besides the template.

Owns :class:`QueryConfig` (pydantic; unknown fields are rejected, sizes must be
positive, prompt templates may only use the placeholders their role binds) and
:class:`Query` (the question, documents and config). Lowering reads both; the graph's
shape depends on them (chunk count, number of expansions, top-k, synthesis mode).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from primflow.api.documents import Document, as_documents
from primflow.graph.ops import placeholders


class SynthesisMode(StrEnum):
    ONE_SHOT = "one_shot"  # one LLM call over all retrieved passages
    REFINE = "refine"  # a chain of calls, each refining the answer with the next passage
    TREE = "tree"  # answer per passage, then combine groups level by level up to a root


# Which placeholders each prompt may use; the first listed are required.
PROMPT_PLACEHOLDERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # name: (required, allowed)
    "expansion": (frozenset({"question"}), frozenset({"question", "num_expansions"})),
    "answer": (frozenset({"question", "context"}), frozenset({"question", "context"})),
    "refine": (
        frozenset({"question", "answer", "context"}),
        frozenset({"question", "answer", "context"}),
    ),
    "combine": (frozenset({"question", "answers"}), frozenset({"question", "answers"})),
    "judge": (frozenset({"question"}), frozenset({"question"})),
    "search_answer": (
        frozenset({"question", "search_results"}),
        frozenset({"question", "search_results"}),
    ),
    "situate": (frozenset({"neighbours", "chunk"}), frozenset({"neighbours", "chunk"})),
}


class Prompts(BaseModel):
    """Prompt templates with ``{placeholder}`` fields (write ``{{`` for a literal brace).

    Each template puts the early inputs (the question) before the late ones (retrieved
    context), so prefill splitting can run the prefix while retrieval is under way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    expansion: str = (
        "Write {num_expansions} short search queries that would help answer the question.\n"
        "Reply with a JSON list of strings only.\n"
        "Question: {question}\nQueries:"
    )
    answer: str = (
        "Answer the question using only the context. Be brief.\n"
        "Question: {question}\nContext:\n{context}\nAnswer:"
    )
    refine: str = (
        "Improve the answer to the question using the new context. Keep it brief.\n"
        "Question: {question}\nCurrent answer: {answer}\nNew context:\n{context}\n"
        "Improved answer:"
    )
    combine: str = (
        "Combine the partial answers into one brief answer to the question.\n"
        "Question: {question}\nPartial answers:\n{answers}\nAnswer:"
    )
    judge: str = (
        "Does answering this question need a web search for facts? Reply yes or no.\n"
        "Question: {question}\nReply:"
    )
    search_answer: str = (
        "Answer the question. Use the search results if there are any.\n"
        "Question: {question}\nSearch results:\n{search_results}\nAnswer:"
    )
    situate: str = (
        "<document>\n{neighbours}\n</document>\n"
        "Here is a chunk of that document:\n<chunk>\n{chunk}\n</chunk>\n"
        "Write one short sentence that situates the chunk within the document.\nContext:"
    )

    @model_validator(mode="after")
    def _check_placeholders(self) -> Prompts:
        for name, (required, allowed) in PROMPT_PLACEHOLDERS.items():
            check_placeholders(getattr(self, name), required, allowed, f"prompts.{name}")
        return self


def check_placeholders(
    template: str, required: frozenset[str], allowed: frozenset[str], where: str
) -> None:
    """Raise ValueError naming ``where`` if ``template`` is malformed or mis-bound."""
    try:
        names = set(placeholders(template))
    except ValueError as exc:
        raise ValueError(f"{where}: malformed template ({exc}); write {{{{ for a brace") from None
    unknown = sorted(names - allowed)
    if unknown:
        known = ", ".join(f"{{{n}}}" for n in sorted(allowed))
        bad = ", ".join(f"{{{n}}}" for n in unknown)
        raise ValueError(f"{where}: placeholder {bad} is not bound (it may use {known})")
    missing = sorted(required - names)
    if missing:
        raise ValueError(f"{where}: needs placeholder {', '.join(f'{{{n}}}' for n in missing)}")


class QueryConfig(BaseModel):
    """Knobs one query may set. Sizes of text are in characters.

    Unknown fields are rejected and sizes checked, so a typo fails loudly.

    Examples:
        >>> from primflow import QueryConfig
        >>> config = QueryConfig(top_k=5, synthesis_mode="refine")
        >>> config.with_changes(max_tokens=32).max_tokens, config.synthesis_mode
        (32, <SynthesisMode.REFINE: 'refine'>)
        >>> QueryConfig(top_k=0)
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for QueryConfig
        top_k
        ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_size: Annotated[int, Field(gt=0)] = 300
    chunk_overlap: Annotated[int, Field(ge=0)] = 30
    top_k: Annotated[int, Field(gt=0, description="passages fetched per search query")] = 3
    rerank_top_k: Annotated[int, Field(gt=0, description="passages kept after reranking")] = 3
    web_top_k: Annotated[int, Field(gt=0)] = 4
    num_expansions: Annotated[int, Field(gt=0, le=16)] = 3
    num_neighbours: Annotated[
        int, Field(ge=0, description="chunks around a chunk when situating it")
    ] = 4
    synthesis_mode: SynthesisMode = SynthesisMode.ONE_SHOT
    tree_fanout: Annotated[
        int, Field(ge=2, description="partial answers combined per tree call")
    ] = 2
    passages_per_call: Annotated[
        int, Field(gt=0, description="passages per refine or tree-leaf call")
    ] = 1
    max_tokens: Annotated[int, Field(gt=0, description="answer length")] = 128
    expansion_max_tokens: Annotated[int, Field(gt=0)] = 96
    judge_max_tokens: Annotated[int, Field(gt=0)] = 4
    situate_max_tokens: Annotated[int, Field(gt=0)] = 48
    ignore_eos: Annotated[
        bool,
        Field(
            description=(
                "free-text answers run to max_tokens, ending only at max_tokens or a stop "
                "string (as vLLM's SamplingParams.ignore_eos); for benchmarks, so every "
                "scheme generates answers of the same length"
            )
        ),
    ] = False
    prompts: Prompts = Field(default_factory=Prompts)

    @model_validator(mode="after")
    def _check_overlap(self) -> QueryConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be < chunk_size ({self.chunk_size})"
            )
        return self

    def with_changes(self, **changes: Any) -> QueryConfig:
        """A copy with ``changes`` applied and validated."""
        return QueryConfig.model_validate({**self.model_dump(), **changes})


@dataclass(frozen=True)
class Query:
    """One request: the question, the documents to answer from, and its config.

    ``inputs`` holds values for extra template inputs beyond the built-in ``question``;
    documents may be given as plain strings.

    Examples:
        >>> from primflow import Document, Query, QueryConfig
        >>> doc = Document("HNSW is a graph index.", "hnsw.md")
        >>> query = Query("What is HNSW?", [doc, "A second document."], QueryConfig(top_k=2))
        >>> [d.source for d in query.documents], query.config.top_k
        (['hnsw.md', 'doc-1'], 2)
    """

    question: str
    documents: Sequence[Document] = ()
    config: QueryConfig = field(default_factory=QueryConfig)
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.question.strip():
            raise ValueError("query question is empty")
        object.__setattr__(self, "documents", tuple(as_documents(list(self.documents))))


__all__ = ["Prompts", "Query", "QueryConfig", "SynthesisMode", "check_placeholders"]
