"""Request and response models of the HTTP API (pydantic; they make the OpenAPI schema).

Invariants: every request model forbids unknown fields (except the OpenAI-compatible
chat request, whose clients send sampling fields primflow does not use), bounds every
string and list, and names its fields in validation errors; responses are built only
from an :class:`~primflow.session.session.Answer` or an error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from primflow.api.config import SynthesisMode

MAX_QUESTION_CHARS = 8_000
MAX_DOCUMENT_CHARS = 2_000_000
MAX_NUM_DOCUMENTS = 1_000
MAX_DEADLINE_S = 3_600.0
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

Question = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS)]
DeadlineS = Annotated[
    float,
    Field(gt=0, le=MAX_DEADLINE_S, description="seconds to answer in; past it: 504"),
]
MAX_PRIORITY = 100
Priority = Annotated[
    int,
    Field(
        ge=-MAX_PRIORITY,
        le=MAX_PRIORITY,
        description="higher is served first on every engine (default 0)",
    ),
]
CollectionName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="a collection uploaded to POST /v1/collections/{name}/documents; the "
        "query reads it instead of indexing documents",
    ),
]
# OpenAI's service tiers, as query priorities.
PRIORITY_BY_SERVICE_TIER = {"auto": 0, "default": 0, "scale": 0, "flex": -1, "priority": 1}


class QueryOptions(BaseModel):
    """Per-query knobs (unset ones keep the app's defaults)."""

    model_config = ConfigDict(extra="forbid")

    top_k: Annotated[int, Field(gt=0, le=100, description="passages per search")] | None = None
    rerank_top_k: Annotated[int, Field(gt=0, le=100)] | None = None
    web_top_k: Annotated[int, Field(gt=0, le=100)] | None = None
    num_expansions: Annotated[int, Field(gt=0, le=16)] | None = None
    synthesis_mode: SynthesisMode | None = None
    tree_fanout: Annotated[int, Field(ge=2, le=16)] | None = None
    passages_per_call: Annotated[int, Field(gt=0, le=100)] | None = None
    max_tokens: Annotated[int, Field(gt=0, le=4096, description="answer length")] | None = None
    chunk_size: Annotated[int, Field(gt=0, le=100_000, description="characters")] | None = None
    chunk_overlap: Annotated[int, Field(ge=0, le=100_000)] | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class InlineDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=MAX_DOCUMENT_CHARS)]
    source: Annotated[str, Field(min_length=1, max_length=256)] | None = None


class QueryRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "question": "How many days of annual leave do employees get?",
                    "documents": [
                        {"text": "Employees get 25 days of annual leave.", "source": "hr.md"}
                    ],
                    "config": {"top_k": 3, "max_tokens": 64},
                    "deadline_s": 30,
                    "stream": False,
                },
                {"question": "How much leave do I get?", "collection": "handbook", "priority": 5},
            ]
        },
    )

    question: Question
    config: QueryOptions = Field(default_factory=QueryOptions)
    documents: Annotated[list[InlineDocument], Field(max_length=MAX_NUM_DOCUMENTS)] = Field(
        default_factory=list
    )
    collection: CollectionName | None = None
    deadline_s: DeadlineS | None = None
    priority: Priority = 0
    stream: bool = Field(
        default=False,
        description="answer as Server-Sent Events: query, token, node_done, then done or error",
    )


class Passage(BaseModel):
    source: str
    chunk_id: int
    score: float


class Primitive(BaseModel):
    node: str
    op: str
    engine: str | None
    start_s: float
    queue_s: float
    service_s: float
    batch_size: int
    is_critical: bool


class QueryResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query_id": "naive_rag-7",
                    "app": "naive_rag",
                    "answer": "Employees get 25 days of annual leave.",
                    "latency_s": 1.84,
                    "lower_s": 0.002,
                    "optimize_s": 0.0004,
                    "passages": [{"source": "hr.md", "chunk_id": 0, "score": 0.71}],
                    "critical_path": ["embed_docs", "ingest", "search", "synthesize.decode"],
                    "primitives": [],
                }
            ]
        }
    )

    query_id: str
    app: str
    answer: str
    latency_s: float
    lower_s: float
    optimize_s: float
    passages: list[Passage]
    critical_path: list[str]
    primitives: list[Primitive]


class ErrorDetail(BaseModel):
    type: str
    message: str
    query_id: str | None = None
    engine: str | None = None
    primitive: str | None = None
    unfinished: list[str] | None = None
    fields: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "type": "deadline_exceeded",
                        "message": "query 'naive_rag-3' missed its deadline of 2 s; "
                        "unfinished: synthesize.decode",
                        "query_id": "naive_rag-3",
                        "unfinished": ["synthesize.decode"],
                    }
                }
            ]
        }
    )

    error: ErrorDetail


class AppInfo(BaseModel):
    name: str
    description: str
    needs_documents: bool
    components: list[dict[str, Any]]
    default_config: dict[str, Any]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Annotated[str, Field(max_length=MAX_QUESTION_CHARS)]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: (
        Annotated[str, Field(max_length=MAX_QUESTION_CHARS)]
        | Annotated[list[TextPart], Field(max_length=64)]
        | None
    ) = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request: ``model`` is the app; the last user message is
    the question. Sampling fields clients send (temperature, ...) are accepted and
    ignored; ``service_tier`` sets the query's priority (``priority``: 1, ``flex``: -1,
    others 0). ``documents``, ``collection``, ``deadline_s`` and ``priority`` (higher
    first; it wins over ``service_tier``) are primflow's (``extra_body`` in the
    ``openai`` client)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "naive_rag",
                    "messages": [{"role": "user", "content": "What is the leave policy?"}],
                    "stream": True,
                    "documents": [{"text": "Employees get 25 days of annual leave."}],
                }
            ]
        },
    )

    model: Annotated[str, Field(min_length=1, max_length=64)]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=256)]
    stream: bool = False
    max_tokens: Annotated[int, Field(gt=0, le=4096)] | None = None
    max_completion_tokens: Annotated[int, Field(gt=0, le=4096)] | None = None
    documents: Annotated[list[InlineDocument], Field(max_length=MAX_NUM_DOCUMENTS)] = Field(
        default_factory=list
    )
    collection: CollectionName | None = None
    deadline_s: DeadlineS | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    priority: Priority | None = None

    def query_priority(self) -> int:
        if self.priority is not None:
            return self.priority
        return PRIORITY_BY_SERVICE_TIER[self.service_tier or "default"]


class UploadRequest(BaseModel):
    """Documents sent inline (JSON) to a collection; files go as multipart instead."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"documents": [{"text": "Employees get 25 days of leave.", "source": "hr.md"}]}
            ]
        },
    )

    documents: Annotated[list[InlineDocument], Field(min_length=1, max_length=MAX_NUM_DOCUMENTS)]


class CollectionInfo(BaseModel):
    name: str
    backend: str
    num_documents: int
    num_chunks: int
    dim: int | None
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    created_at: str
    updated_at: str


class UploadResponse(BaseModel):
    collection: CollectionInfo
    is_new: bool
    num_documents_added: int
    num_chunks_added: int
