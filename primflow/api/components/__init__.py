"""The built-in components, one per file; ``KINDS`` maps each spec ``kind`` to its class."""

from primflow.api.component import Component
from primflow.api.components.aggregate import Aggregate
from primflow.api.components.chunk import ChunkDocuments
from primflow.api.components.condition import Condition
from primflow.api.components.embed import Embed
from primflow.api.components.expand import ExpandQuery
from primflow.api.components.generate import Generate, Judge
from primflow.api.components.ingest import Ingest
from primflow.api.components.loop import Loop
from primflow.api.components.rerank import Rerank
from primflow.api.components.search import VectorSearch
from primflow.api.components.situate import Situate
from primflow.api.components.synthesize import Synthesize
from primflow.api.components.web_search import WebSearch

KINDS: dict[str, type[Component]] = {
    cls.kind: cls
    for cls in (
        ChunkDocuments,
        Embed,
        Ingest,
        VectorSearch,
        Rerank,
        WebSearch,
        ExpandQuery,
        Generate,
        Judge,
        Synthesize,
        Situate,
        Condition,
        Aggregate,
    )
}

__all__ = [
    "KINDS",
    "Aggregate",
    "ChunkDocuments",
    "Condition",
    "Embed",
    "ExpandQuery",
    "Generate",
    "Ingest",
    "Judge",
    "Loop",
    "Rerank",
    "Situate",
    "Synthesize",
    "VectorSearch",
    "WebSearch",
]
