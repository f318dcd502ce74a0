"""The workflow API: components composed with ``>>`` into templates, or loaded from a
YAML/JSON spec, plus the per-query config and data."""

from primflow.api.component import Component, Flow
from primflow.api.components import (
    Aggregate,
    ChunkDocuments,
    Condition,
    Embed,
    ExpandQuery,
    Generate,
    Ingest,
    Judge,
    Rerank,
    Situate,
    Synthesize,
    VectorSearch,
    WebSearch,
)
from primflow.api.config import Prompts, Query, QueryConfig, SynthesisMode
from primflow.api.documents import Document, DocumentError, chunk_documents, load_documents
from primflow.api.lower import LoweredQuery, LoweringError, lower, lower_query
from primflow.api.spec import SpecError, load_spec, parse_spec
from primflow.api.template import Template, TemplateError, build_template

__all__ = [
    "Aggregate",
    "ChunkDocuments",
    "Component",
    "Condition",
    "Document",
    "DocumentError",
    "Embed",
    "ExpandQuery",
    "Flow",
    "Generate",
    "Ingest",
    "Judge",
    "LoweredQuery",
    "LoweringError",
    "Prompts",
    "Query",
    "QueryConfig",
    "Rerank",
    "Situate",
    "SpecError",
    "SynthesisMode",
    "Synthesize",
    "Template",
    "TemplateError",
    "VectorSearch",
    "WebSearch",
    "build_template",
    "chunk_documents",
    "load_documents",
    "load_spec",
    "lower",
    "lower_query",
    "parse_spec",
]
