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

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from primflow.api.documents import Document, as_documents
from primflow.graph.ops import placeholders

MAX_NUM_STOP = 4  # stop strings per query, as in the OpenAI API
MAX_SEED = 2**32 - 2  # llama.cpp seeds are 32-bit; 2**32 - 1 means "random" there


class SynthesisMode(StrEnum):
    """How ``Synthesize`` turns passages into an answer."""

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
    context), so prefill splitting can run the prefix while retrieval is under way. A
    template may use only the placeholders its role binds, and must use the required
    ones; a wrong one fails validation naming it.

    Attributes:
        expansion: ``ExpandQuery``: ``{question}``, optionally ``{num_expansions}``.
        answer: one-shot synthesis, the first refine call, tree leaves: ``{question}``,
            ``{context}``.
        refine: refine steps: ``{question}``, ``{answer}``, ``{context}``.
        combine: tree levels above the leaves: ``{question}``, ``{answers}``.
        judge: ``Judge``: ``{question}``.
        search_answer: search-augmented answer: ``{question}``, ``{search_results}``.
        situate: ``Situate``: ``{neighbours}``, ``{chunk}``.
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

    A pydantic model: unknown fields are rejected, sizes must be positive and
    ``chunk_overlap`` below ``chunk_size``. Component options left at ``None`` read the
    matching field here, so one template serves queries with different settings.
    ``with_changes(**fields)`` returns a validated copy.

    Attributes:
        chunk_size: characters per chunk (``ChunkDocuments``).
        chunk_overlap: characters shared by neighbouring chunks.
        top_k: passages fetched per search query (``VectorSearch``).
        rerank_top_k: passages kept after reranking (``Rerank``, ``Aggregate`` top_k).
        web_top_k: pages fetched per web search query (``WebSearch``).
        num_expansions: search queries ``ExpandQuery`` writes (at most 16).
        num_neighbours: chunks around a chunk that ``Situate`` shows the LLM.
        synthesis_mode: ``one_shot``, ``refine`` or ``tree`` (``Synthesize``).
        tree_fanout: partial answers combined per tree call.
        passages_per_call: passages per refine or tree-leaf call.
        max_tokens: answer length in tokens (``Generate``, ``Synthesize``).
        expansion_max_tokens: token limit of the query expansion call.
        judge_max_tokens: token limit of the judge's reply.
        situate_max_tokens: token limit of each situating call.
        ignore_eos: free-text answers run to ``max_tokens`` (end-of-sequence ignored),
            so benchmarks compare schemes on answers of equal length.
        temperature: sampling temperature of the answer, 0 to 2 as in the OpenAI API;
            0 (the default) is greedy decoding.
        top_p: nucleus sampling: sample from the smallest set of tokens whose
            probability reaches ``top_p`` (0 < top_p <= 1; 1 keeps every token).
        sample_top_k: sample from the ``sample_top_k`` most likely tokens (0: no
            limit; ``top_k`` is the search's).
        seed: seed of the sampler; the same seed, prompt and settings give the same
            answer. ``None``: a fresh random seed per call.
        stop: up to 4 stop strings (as in the OpenAI API): the answer ends before the
            first one it would contain, which is not part of it.
        prompts: the prompt templates (``Prompts``).

    The sampling fields (``temperature``, ``top_p``, ``sample_top_k``, ``seed``, ``stop``)
    apply to the free-text answer calls (``Generate``, ``Synthesize``); the structured
    calls (query expansion, the judge, situating) stay greedy, since their replies are
    parsed.

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
    temperature: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)] = 0.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 1.0
    sample_top_k: Annotated[int, Field(ge=0)] = 0
    seed: Annotated[int | None, Field(ge=0, le=MAX_SEED)] = None
    stop: Annotated[tuple[str, ...], Field(max_length=MAX_NUM_STOP)] = ()
    prompts: Prompts = Field(default_factory=Prompts)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # one stop string, as the OpenAI API allows
            value = (value,)
        if isinstance(value, list | tuple) and any(s == "" for s in value):
            raise ValueError("a stop string must not be empty")
        return value

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
