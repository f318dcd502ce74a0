"""The workflow API: components composed with ``>>`` into templates, or loaded from a
YAML/JSON spec, plus the per-query config and data.

Writing a component of your own (docs/guide/extending.md) takes :class:`Component`,
:class:`Role`, the :class:`LoweringContext` it expands in, :class:`Source` and, for an
LLM call, :func:`add_llm_call` with :class:`Binding` and :class:`DecodeSpec`. A plain
Python function becomes a component with :func:`function`.
"""

from primflow.api.component import Component, Flow, Role
from primflow.api.components import (
    Aggregate,
    ChunkDocuments,
    Condition,
    Embed,
    ExpandQuery,
    Generate,
    Ingest,
    Judge,
    Loop,
    Rerank,
    Situate,
    Synthesize,
    VectorSearch,
    WebSearch,
)
from primflow.api.components.llm_call import Binding, DecodeSpec, add_llm_call
from primflow.api.config import Prompts, Query, QueryConfig, SynthesisMode
from primflow.api.documents import Document, DocumentError, chunk_documents, load_documents
from primflow.api.expansion import LoweringContext, Source
from primflow.api.function import FunctionComponent, FunctionSpec, function, registered_function
from primflow.api.lower import LoweredQuery, LoweringError, lower, lower_query
from primflow.api.spec import SpecError, load_spec, parse_spec
from primflow.api.template import Template, TemplateError, build_template

__all__ = [
    "Aggregate",
    "Binding",
    "ChunkDocuments",
    "Component",
    "Condition",
    "DecodeSpec",
    "Document",
    "DocumentError",
    "Embed",
    "ExpandQuery",
    "Flow",
    "FunctionComponent",
    "FunctionSpec",
    "Generate",
    "Ingest",
    "Judge",
    "Loop",
    "LoweredQuery",
    "LoweringContext",
    "LoweringError",
    "Prompts",
    "Query",
    "QueryConfig",
    "Rerank",
    "Role",
    "Situate",
    "Source",
    "SpecError",
    "SynthesisMode",
    "Synthesize",
    "Template",
    "TemplateError",
    "VectorSearch",
    "WebSearch",
    "add_llm_call",
    "build_template",
    "chunk_documents",
    "function",
    "load_documents",
    "load_spec",
    "lower",
    "lower_query",
    "parse_spec",
    "registered_function",
]
