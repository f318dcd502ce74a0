"""The embedder engine: EMBED requests -> vectors, with batches fused into one pass.

One ``submit(batch)`` of several requests (from several primitives and queries) runs as
ONE length-sorted, sub-batched inference over all their texts, and the rows are split
back per request. Invariants:

- ``inputs["items"]`` is a list of ``str`` or ``Chunk``; outputs ``{"vectors": array}``
  of shape ``(len(items), 384)``, unit rows, in item order, read-only and sealed
  (``unit_vectors.py``) so a vector engine takes them without checking every value.
- Identical texts across the batch are embedded once (a question shared by several
  primitives costs one row).
- A request with bad items fails alone; the rest of the batch still runs.
- Runs on the engine's own thread; before each sub-batch it asks the core budget how
  many threads to use.
- ``model_dir`` (a user's ONNX model folder) replaces the shipped MiniLM; a folder that
  is not a model fails ``start`` with an ``EngineError`` naming the path.
- Abort of a running batch (``engines/threaded.py``): the sub-batch running when the
  abort comes finishes and holds its core-budget lease to its end; if every request of
  the batch belongs to an ended query, the remaining sub-batches are skipped, so the
  cores are free before the next batch starts. A batch fused with a live query's
  request embeds every text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primflow.engines.base import EngineError, EngineKind, EngineRequest
from primflow.engines.embedder.encoder import MiniLMEncoder, model_id_for, shared_encoder
from primflow.engines.model_paths import ModelPathError
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.engines.unit_vectors import is_sealed, seal_checked, seal_if_unit
from primflow.graph.ir import Op
from primflow.graph.ops import ITEMS, VECTORS
from primflow.values import Chunk


def item_texts(items: Any, engine: str, node: str) -> list[str]:
    """The texts of an ``items`` value (strings or chunks), or a clear error."""
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise EngineError(
            engine, node, f"items must be a list of str or Chunk, got {type(items).__name__}"
        )
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, Chunk):
            texts.append(item.text)
        elif isinstance(item, str):
            texts.append(item)
        else:
            raise EngineError(
                engine, node, f"items[{i}] must be str or Chunk, got {type(item).__name__}"
            )
    return texts


class EmbedderEngine(ThreadedEngine):
    kind = EngineKind.EMBEDDER

    def __init__(
        self,
        name: str = "embedder",
        encoder: MiniLMEncoder | None = None,
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
        model_dir: Path | None = None,
    ) -> None:
        super().__init__(name, profile, budget)
        self._encoder = encoder
        self.model_dir = model_dir
        self._is_started = False

    @property
    def encoder(self) -> MiniLMEncoder:
        if self._encoder is None:
            self._encoder = shared_encoder(self.model_dir)
        return self._encoder

    @property
    def model_id(self) -> str:
        """The model this engine runs, as a collection records it."""
        if self._encoder is not None:
            return self._encoder.model_id
        return model_id_for(self.model_dir)

    async def start(self) -> None:
        if self._is_started:
            return
        try:
            encoder = self.encoder
            # Warm both sessions on the engine thread, where they will run.
            counts = sorted({1, encoder.max_num_threads})
            await self._run_on_engine_thread(lambda: encoder.warm_up(counts))
        except ModelPathError as exc:
            raise EngineError(self.name, "<start>", str(exc)) from None
        self._is_started = True

    async def _run_on_engine_thread(self, fn: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        unique: dict[str, int] = {}
        rows_per_request: list[list[int] | None] = []
        for request in batch:
            try:
                if request.op is not Op.EMBED:
                    raise EngineError(self.name, request.node, f"cannot run op {request.op}")
                texts = item_texts(request.inputs.get(ITEMS), self.name, request.node)
            except EngineError as err:
                rows_per_request.append(None)
                outcomes.append(err)
                continue
            rows_per_request.append([unique.setdefault(t, len(unique)) for t in texts])
            outcomes.append({})
        vectors = self.encoder.encode(list(unique), thread_lease=self.lease_threads)
        # Checked once here (microseconds against the encode), so the vector engines
        # take these rows in O(1) (unit_vectors.py).
        vectors = seal_if_unit(vectors)
        for i, rows in enumerate(rows_per_request):
            if rows is not None:
                outcomes[i] = {VECTORS: self._rows_of(vectors, rows)}
        return outcomes

    @staticmethod
    def _rows_of(vectors: np.ndarray, rows: list[int]) -> np.ndarray:
        """The request's rows: the whole matrix when they are all of it in order (one
        request without repeated texts: no copy), else a (sealed) gathered copy."""
        if len(rows) == len(vectors) and rows == list(range(len(vectors))):
            return vectors
        picked = vectors[np.asarray(rows, dtype=np.int64)]
        return seal_checked(picked, is_handed_over=True) if is_sealed(vectors) else picked
