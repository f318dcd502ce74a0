"""The public API is small and deliberate: adding or removing a name is a reviewed change."""

import importlib
import subprocess
import sys

import primflow

# Grouped as the package docstring lists them. Added on purpose in issue 11: App,
# Component, Document (a user's own workflow), Answer (what Session.ask returns),
# EngineKind, ThreadedEngine (a user's own engine) and QueryError (the base to catch).
# Issue 17: function (a decorated Python function as a component).
WORKFLOW = {
    "Aggregate", "App", "ChunkDocuments", "Component", "Condition", "Document", "Embed",
    "ExpandQuery", "Generate", "Ingest", "Judge", "Loop", "Query", "QueryConfig", "Rerank",
    "Situate", "Synthesize", "Template", "VectorSearch", "WebSearch", "build_template",
    "get_app", "load_documents", "load_spec", "function",
}  # fmt: skip
RUNNING = {
    "Answer", "EngineStack", "Graph", "Op", "QueryCancelled", "QueryError", "QueryFailed",
    "QueryResult", "QueryTimeout", "Runtime", "Session", "lower", "lower_query", "optimize",
}  # fmt: skip
ENGINE_CONTRACT = {
    "Engine", "EngineError", "EngineKind", "EngineRequest", "LatencyProfile", "ThreadedEngine",
}  # fmt: skip
PUBLIC = WORKFLOW | RUNNING | ENGINE_CONTRACT | {"__version__"}


def test_public_names_are_pinned() -> None:
    assert set(primflow.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(primflow, name) is not None


def test_subpackages_list_what_they_export() -> None:
    for package in ("api", "passes", "runtime", "session", "apps"):
        module = importlib.import_module(f"primflow.{package}")
        for name in module.__all__:
            assert hasattr(module, name), f"primflow.{package} lists missing {name}"


def test_importing_primflow_loads_no_model_runtime() -> None:
    code = (
        "import sys, primflow; "
        "print(sorted(m for m in ('llama_cpp', 'onnxruntime', 'faiss', 'psycopg') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
