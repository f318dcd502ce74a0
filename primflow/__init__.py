"""primflow: serve LLM applications end to end as primitive-level dataflow graphs.

The public API is this module's ``__all__`` (pinned by tests/unit/test_public_api.py):
declare a workflow (components composed with ``>>``, or a YAML/JSON spec), lower it per
query into a primitive graph, optimize it, and run it on engines with the two-tier
runtime, or let a :class:`Session` do all three on the embedded engine stack.
"""

from primflow.api import (
    Aggregate,
    ChunkDocuments,
    Condition,
    Embed,
    ExpandQuery,
    Generate,
    Ingest,
    Judge,
    Query,
    QueryConfig,
    Rerank,
    Situate,
    Synthesize,
    Template,
    VectorSearch,
    WebSearch,
    build_template,
    load_documents,
    load_spec,
    lower,
    lower_query,
)
from primflow.apps import get_app
from primflow.engines.base import Engine, EngineError, EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph, Op
from primflow.passes import optimize
from primflow.runtime import QueryCancelled, QueryFailed, QueryResult, QueryTimeout, Runtime
from primflow.session import EngineStack, Session

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "ChunkDocuments",
    "Condition",
    "Embed",
    "Engine",
    "EngineError",
    "EngineRequest",
    "EngineStack",
    "ExpandQuery",
    "Generate",
    "Graph",
    "Ingest",
    "Judge",
    "LatencyProfile",
    "Op",
    "Query",
    "QueryCancelled",
    "QueryConfig",
    "QueryFailed",
    "QueryResult",
    "QueryTimeout",
    "Rerank",
    "Runtime",
    "Session",
    "Situate",
    "Synthesize",
    "Template",
    "VectorSearch",
    "WebSearch",
    "__version__",
    "build_template",
    "get_app",
    "load_documents",
    "load_spec",
    "lower",
    "lower_query",
    "optimize",
]
