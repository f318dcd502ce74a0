"""Embedding a collection's chunks through an embedder engine (the stack's own, so the
same model and core budget as queries), and naming the model an engine runs.

Invariants: rows come back in chunk order, one per chunk; the work is submitted as
EMBED requests of at most ``MAX_NUM_ROWS_PER_REQUEST`` items under one query id, which
is released afterwards, so the engine keeps no state of it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from primflow.engines.base import Engine, EngineKind, EngineRequest
from primflow.graph.ir import Op
from primflow.graph.ops import ITEMS, VECTORS
from primflow.values import Chunk

MAX_NUM_ROWS_PER_REQUEST = 256

_job_numbers = itertools.count()


def embedding_model_id(embedder: Engine) -> str:
    """The name of the model ``embedder`` runs, as a collection records it.

    Wrappers that forward to an ``inner`` engine (a stack's borrowed views, the test
    recorder) name the model of the engine they wrap.
    """
    engine = embedder
    while isinstance(getattr(engine, "inner", None), Engine):
        engine = engine.inner  # type: ignore[attr-defined]
    if engine.kind is not EngineKind.EMBEDDER:
        raise ValueError(f"engine {embedder.name!r} is a {engine.kind} engine, not an embedder")
    from primflow.engines.embedder import EmbedderEngine

    if isinstance(engine, EmbedderEngine):
        return engine.model_id
    return f"{type(engine).__module__}.{type(engine).__qualname__}"


async def embed_chunks(
    embedder: Engine, chunks: Sequence[Chunk], job: str
) -> npt.NDArray[np.float32]:
    """The embedding of each chunk's text, ``[len(chunks) × dim]``."""
    query_id = f"collection:{job}:{next(_job_numbers)}"
    requests = [
        EngineRequest(
            query_id,
            f"embed_collection.{start // MAX_NUM_ROWS_PER_REQUEST}",
            Op.EMBED,
            {ITEMS: list(chunks[start : start + MAX_NUM_ROWS_PER_REQUEST])},
            {},
            num_items=len(chunks[start : start + MAX_NUM_ROWS_PER_REQUEST]),
        )
        for start in range(0, len(chunks), MAX_NUM_ROWS_PER_REQUEST)
    ]
    batch_size = max(1, embedder.max_batch_size)
    try:
        parts: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(requests), batch_size):
            outputs = await asyncio.gather(*embedder.submit(requests[start : start + batch_size]))
            parts.extend(np.asarray(out[VECTORS], dtype=np.float32) for out in outputs)
    finally:
        embedder.release(query_id)
    matrix: npt.NDArray[np.float32] = (
        np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    )
    if len(matrix) != len(chunks):
        raise RuntimeError(f"embedder {embedder.name!r} gave {len(matrix)} rows for {len(chunks)}")
    return matrix
