"""Engine factories for :class:`~primflow.session.stack.EngineStack`.

``embedded_factory`` builds the real embedded engines (llama.cpp LLM, MiniLM embedder,
FAISS index, a reranker that scores each passage by its MiniLM cosine with the question
(a bi-encoder, not a cross-encoder: engines/rerank/), BM25 web search over
``samples/web``), and the function engine of users' Python functions; each model's
import happens only when that kind is built, so a stack without a reranker never loads
one. ``fake_factory`` builds the model-free fakes of ``primflow.testing.fakes`` (tests
and quick checks of the baselines' scheduling), and the real function engine, which
needs no model. Both take the stack's core budget and the
engine's measured profile (None: the kind's default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from primflow.engines.base import Engine, EngineKind
from primflow.engines.function import FunctionEngine
from primflow.engines.model_paths import ModelPathError
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.session.stack import EngineFactory


class EngineUnavailable(RuntimeError):
    """An embedded engine cannot be built here (its package is missing or broken)."""


@dataclass(frozen=True)
class EmbeddedSettings:
    """Knobs of the embedded engines; ``None`` keeps each engine's own default."""

    llm_model_path: str | None = None  # a GGUF file; None: the shipped SmolLM2
    judge_model_path: str | None = None  # None: the same file as the core LLM
    # An ONNX embedding model folder (model.onnx + tokenizer.json) for the embedder and
    # the cosine reranker; None: the shipped all-MiniLM-L6-v2.
    embed_model_dir: Path | None = None
    n_ctx: int = 16384  # contextual retrieval situates ~20 chunks of ~600 tokens at once
    n_seq_max: int = 32
    # The LLM's fast batching option (docs/results/llm-engine.md): a cached Q4_0 conversion of
    # the model (flash attention is on either way), 2.06x batched throughput at 8 sequences
    # vs 1.55x.
    is_llm_fast: bool = False
    llm_cross_query_batching: str = "cost"  # LlamaConfig.cross_query_batching
    # 4: contextual retrieval (92 situating calls) 300.9 -> 125.1 s, sequential 171.6 s;
    # the apps' other batches (3 tree leaves, 3 expansions) stay within it.
    llm_max_num_seqs_per_step: int | None = 4  # LlamaConfig.max_num_seqs_per_step
    web_corpus: Path | None = None  # None: samples/web


def embedded_factory(settings: EmbeddedSettings | None = None) -> EngineFactory:
    chosen = settings or EmbeddedSettings()

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine:
        try:
            return _build_embedded(name, kind, budget, profile, chosen)
        except ModelPathError as exc:
            raise EngineUnavailable(f"engine {name!r} ({kind}): {exc}") from None
        except ImportError as exc:
            raise EngineUnavailable(
                f"engine {name!r} ({kind}) is not available: {exc}; "
                "install the engines with `make install` (pip install -e '.[engines]')"
            ) from exc

    return build


def _build_embedded(
    name: str,
    kind: EngineKind,
    budget: CoreBudget,
    profile: LatencyProfile | None,
    settings: EmbeddedSettings,
) -> Engine:
    if kind is EngineKind.LLM:
        from primflow.engines.llm import LlamaEngine

        model_path = settings.llm_model_path
        if name == "judge" and settings.judge_model_path is not None:
            model_path = settings.judge_model_path
        return LlamaEngine(
            name,
            model_path,
            profile=profile,
            budget=budget,
            n_ctx=settings.n_ctx,
            n_seq_max=settings.n_seq_max,
            quantization="q4_0" if settings.is_llm_fast else None,
            cross_query_batching=settings.llm_cross_query_batching,
            max_num_seqs_per_step=settings.llm_max_num_seqs_per_step,
        )
    if kind is EngineKind.EMBEDDER:
        from primflow.engines.embedder import EmbedderEngine

        return EmbedderEngine(
            name, profile=profile, budget=budget, model_dir=settings.embed_model_dir
        )
    if kind is EngineKind.VECTOR_INDEX:
        from primflow.engines.vector import FaissEngine

        return FaissEngine(name, profile=profile, budget=budget)
    if kind is EngineKind.RERANKER:
        from primflow.engines.rerank import RerankEngine

        return RerankEngine(
            name, profile=profile, budget=budget, model_dir=settings.embed_model_dir
        )
    if kind is EngineKind.WEB_SEARCH:
        from primflow.engines.websearch import Bm25Backend, WebSearchEngine, load_jsonl

        corpus = settings.web_corpus or _samples_web()
        files = sorted(corpus.glob("*.jsonl")) if corpus.is_dir() else [corpus]
        records = [record for file in files for record in load_jsonl(file)]
        if not records:
            raise EngineUnavailable(f"web search corpus {str(corpus)!r} has no records")
        return WebSearchEngine(Bm25Backend(records), name, profile=profile, budget=budget)
    if kind is EngineKind.FUNCTION:
        return FunctionEngine(name, profile, budget)
    raise EngineUnavailable(f"no embedded engine of kind {kind} for {name!r}")


def _samples_web() -> Path:
    from primflow.apps.samples import samples_dir

    return samples_dir() / "web"


def fake_factory(latency_scale: float = 1.0) -> EngineFactory:
    """Fakes whose latency is ``latency_scale`` × the profile's prediction."""
    from primflow.testing.fakes import FAKES_BY_KIND

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine:
        if kind is EngineKind.FUNCTION:  # model-free already: the real one
            return FunctionEngine(name, profile, budget)
        return FAKES_BY_KIND[kind](name, profile, latency_scale=latency_scale)

    return build


def pgvector_factory(dsn: str | None, base: EngineFactory) -> EngineFactory:
    """``base``, except that the vector index is a pgvector engine on ``dsn`` (so
    pgvector collections there can be searched); ``dsn`` None: ``base`` as it is."""
    if not dsn:
        return base

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine | Sequence[Engine]:
        if kind is EngineKind.VECTOR_INDEX:
            from primflow.engines.vector.pgvector_engine import PgVectorEngine

            return PgVectorEngine(name, dsn=dsn, profile=profile, budget=budget)
        return base(name, kind, budget, profile)

    return build
