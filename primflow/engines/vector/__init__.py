"""Vector index engines: FAISS in-process (default) and PostgreSQL + pgvector."""

from primflow.engines.vector.faiss_engine import FaissEngine

__all__ = ["FaissEngine"]
