"""The public API is small and deliberate: adding or removing a name is a reviewed change."""

import importlib
import subprocess
import sys

import primflow

PUBLIC = {
    "Aggregate", "ChunkDocuments", "Condition", "Embed", "Engine", "EngineError",
    "EngineRequest", "EngineStack", "ExpandQuery", "Generate", "Graph", "Ingest", "Judge",
    "LatencyProfile", "Op", "Query", "QueryCancelled", "QueryConfig", "QueryFailed",
    "QueryResult", "QueryTimeout", "Rerank", "Runtime", "Session", "Situate", "Synthesize",
    "Template", "VectorSearch", "WebSearch", "__version__", "build_template", "get_app",
    "load_documents", "load_spec", "lower", "lower_query", "optimize",
}  # fmt: skip


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
