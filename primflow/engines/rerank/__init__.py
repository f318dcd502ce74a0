"""Rerankers and the reranker engine."""

from primflow.engines.rerank.engine import RerankEngine
from primflow.engines.rerank.rerankers import CosineReranker, HybridReranker, Reranker, RerankJob

__all__ = ["CosineReranker", "HybridReranker", "RerankEngine", "RerankJob", "Reranker"]
