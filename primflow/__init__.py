"""primflow: serve LLM applications end to end as primitive-level dataflow graphs.

The public API is this module's ``__all__`` (pinned by tests/unit/test_public_api.py;
every name's docstring has an example, run by tests/unit/test_doctests.py):

- building a workflow: the components, :class:`Component` or :func:`function` (a
  decorated Python function) for your own,
  :func:`build_template` (components composed with ``>>``) or :func:`load_spec` (a
  YAML/JSON spec), :class:`App`, :class:`Query` / :class:`QueryConfig`,
  :class:`Document` / :func:`load_documents`;
- running it: :class:`Session` on an :class:`EngineStack` (lower, optimize and run in
  one call, answers as :class:`Answer`), or the steps by hand: :func:`lower`,
  :func:`optimize`, :class:`Runtime` (results as :class:`QueryResult`, failures as
  :class:`QueryError` and its subclasses);
- the engine contract, for engines of your own: :class:`Engine` (or
  :class:`ThreadedEngine` for synchronous CPU work), :class:`EngineKind`,
  :class:`EngineRequest`, :class:`EngineError`, :class:`LatencyProfile`.

Component authors find the lowering kit in :mod:`primflow.api`; the model-free fake
engines are in :mod:`primflow.testing.fakes`. See docs/guide/extending.md.
"""

from primflow.api import (
    Aggregate,
    ChunkDocuments,
    Component,
    Condition,
    Document,
    Embed,
    ExpandQuery,
    Generate,
    Ingest,
    Judge,
    Loop,
    Query,
    QueryConfig,
    Rerank,
    Situate,
    Synthesize,
    Template,
    VectorSearch,
    WebSearch,
    build_template,
    function,
    load_documents,
    load_spec,
    lower,
    lower_query,
)
from primflow.apps import App, get_app
from primflow.engines.base import Engine, EngineError, EngineKind, EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.engines.threaded import ThreadedEngine
from primflow.graph.ir import Graph, Op
from primflow.passes import optimize
from primflow.runtime import (
    QueryCancelled,
    QueryError,
    QueryFailed,
    QueryResult,
    QueryTimeout,
    Runtime,
)
from primflow.session import Answer, EngineStack, Session

__version__ = "0.1.0"

__all__ = [
    "Aggregate",
    "Answer",
    "App",
    "ChunkDocuments",
    "Component",
    "Condition",
    "Document",
    "Embed",
    "Engine",
    "EngineError",
    "EngineKind",
    "EngineRequest",
    "EngineStack",
    "ExpandQuery",
    "Generate",
    "Graph",
    "Ingest",
    "Judge",
    "LatencyProfile",
    "Loop",
    "Op",
    "Query",
    "QueryCancelled",
    "QueryConfig",
    "QueryError",
    "QueryFailed",
    "QueryResult",
    "QueryTimeout",
    "Rerank",
    "Runtime",
    "Session",
    "Situate",
    "Synthesize",
    "Template",
    "ThreadedEngine",
    "VectorSearch",
    "WebSearch",
    "__version__",
    "build_template",
    "function",
    "get_app",
    "load_documents",
    "load_spec",
    "lower",
    "lower_query",
    "optimize",
]
