"""The reranker engine: RERANK (query, hits) -> {"hits"} best first, at most ``top_k``.

All requests of a batch are re-scored together (one embedding pass for every question
and passage), on the engine's own thread. A request with bad inputs fails alone.
``method``: ``cosine`` (default; score = MiniLM cosine of question and passage) or
``hybrid`` (reciprocal-rank fusion of that with BM25 over the candidates). Neither is a
cross-encoder (rerankers.py says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from primflow.engines.base import EngineError, EngineKind, EngineRequest
from primflow.engines.embedder.encoder import MiniLMEncoder, shared_encoder
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.rerank.rerankers import (
    CosineReranker,
    HybridReranker,
    Reranker,
    RerankJob,
    rerank_job,
)
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.graph.ops import HITS

METHODS = ("cosine", "hybrid")


class RerankEngine(ThreadedEngine):
    kind = EngineKind.RERANKER

    def __init__(
        self,
        name: str = "reranker",
        method: str = "cosine",
        reranker: Reranker | None = None,
        encoder: MiniLMEncoder | None = None,
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
        model_dir: Path | None = None,
    ) -> None:
        """``model_dir``: a user's ONNX embedding model folder instead of MiniLM."""
        super().__init__(name, profile, budget)
        if reranker is None:
            if method not in METHODS:
                raise ValueError(f"rerank method {method!r} is not one of {METHODS}")
            enc = encoder or shared_encoder(model_dir)

            def encode(texts: Sequence[str]) -> Any:
                return enc.encode(texts, thread_lease=self.lease_threads)

            reranker = CosineReranker(encode) if method == "cosine" else HybridReranker(encode)
        self.reranker = reranker

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        jobs: list[tuple[int, RerankJob]] = []
        for i, request in enumerate(batch):
            try:
                jobs.append((i, self._job(request)))
                outcomes.append({})
            except EngineError as err:
                outcomes.append(err)
        if jobs:
            results = self.reranker.rerank_many([job for _, job in jobs])
            for (i, _), hits in zip(jobs, results, strict=True):
                outcomes[i] = {HITS: hits}
        return outcomes

    def _job(self, request: EngineRequest) -> RerankJob:
        return rerank_job(self.name, request)
