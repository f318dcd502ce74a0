"""Persistent collections: documents chunked, embedded and indexed once, then queried
by any number of questions, in this process or a later one.

``CollectionStore`` finds collections under a root folder (create / open / list /
delete); ``Collection.add`` indexes documents through an embedder engine; pass the
collection to ``Session.ask(..., collection=...)`` and the query's graph reads it
instead of indexing documents (``primflow.api.indexed``). Layering: this package uses
the API's document loaders and the engines, and is used by the session and commands.
"""

from primflow.collections.collection import AddReport, Collection
from primflow.collections.embedding import embedding_model_id
from primflow.collections.meta import (
    FORMAT_VERSION,
    Backend,
    CollectionError,
    CollectionExists,
    CollectionMeta,
    UnknownCollection,
    check_name,
)
from primflow.collections.store import ROOT_ENV, CollectionStore, default_root
from primflow.engines.embedder.encoder import MINILM_MODEL

__all__ = [
    "FORMAT_VERSION",
    "MINILM_MODEL",
    "ROOT_ENV",
    "AddReport",
    "Backend",
    "Collection",
    "CollectionError",
    "CollectionExists",
    "CollectionMeta",
    "CollectionStore",
    "UnknownCollection",
    "check_name",
    "default_root",
    "embedding_model_id",
]
