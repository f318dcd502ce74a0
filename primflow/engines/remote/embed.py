"""``RemoteEmbedder``: EMBED on a server's ``/v1/embeddings`` (OpenAI, vLLM, llama.cpp
``--embedding``, Ollama, Text Embeddings Inference).

Invariants: the texts of every request of a batch (several primitives and queries)
go out together, identical texts once, in requests of at most ``max_batch_items``
texts (the server's batch limit); rows come back L2-normalised float32 in item order.
Embedding is idempotent, so failed requests are retried with backoff. A request with
bad items fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from primflow.engines.base import Engine, EngineError, EngineKind, EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile
from primflow.engines.remote.http import ClientSettings, RemoteClient, RemoteError
from primflow.engines.remote.server import check_model
from primflow.graph.ir import Op
from primflow.graph.ops import ITEMS, VECTORS
from primflow.values import Chunk

EMBEDDINGS_PATH = "/v1/embeddings"


def item_texts(items: Any, engine: str, node: str) -> list[str]:
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise EngineError(engine, node, f"items must be a list, got {type(items).__name__}")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, Chunk):
            texts.append(item.text)
        elif isinstance(item, str):
            texts.append(item)
        else:
            raise EngineError(engine, node, f"items[{i}] must be str or Chunk, got {item!r}")
    return texts


class RemoteEmbedder(Engine):
    kind = EngineKind.EMBEDDER

    def __init__(
        self,
        name: str,
        settings: ClientSettings,
        model: str,
        *,
        max_batch_items: int = 64,
        profile: LatencyProfile | None = None,
    ) -> None:
        super().__init__(name, profile)
        if max_batch_items < 1:
            raise ValueError(f"max_batch_items must be >= 1, got {max_batch_items}")
        self.client = RemoteClient(settings)
        self._tasks: set[asyncio.Task[None]] = set()  # running requests (kept alive)
        self.model = model
        self.max_batch_items = max_batch_items
        self.num_http_requests = 0

    @property
    def max_concurrent_batches(self) -> int:
        return self.client.settings.max_concurrent_requests

    async def start(self) -> None:
        await check_model(self.client, self.name, self.model)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.close()

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in batch]
        unique: dict[str, int] = {}
        rows: list[tuple[asyncio.Future[Outputs], list[int], str]] = []
        for request, future in zip(batch, futures, strict=True):
            request.future = future
            try:
                if request.op is not Op.EMBED:
                    raise EngineError(self.name, request.node, f"cannot run op {request.op}")
                texts = item_texts(request.inputs.get(ITEMS), self.name, request.node)
            except EngineError as err:
                future.set_exception(err)
                continue
            rows.append((future, [unique.setdefault(t, len(unique)) for t in texts], request.node))
        if rows:
            task = asyncio.create_task(self._run(list(unique), rows))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return futures

    async def _run(
        self, texts: list[str], rows: list[tuple[asyncio.Future[Outputs], list[int], str]]
    ) -> None:
        try:
            vectors = await self.embed(texts)
        except RemoteError as err:
            for future, _, node in rows:
                if not future.done():
                    future.set_exception(EngineError(self.name, node, f"embedding failed: {err}"))
            return
        for future, indices, _ in rows:
            if not future.done():  # an aborted query's future is cancelled
                future.set_result({VECTORS: vectors[np.asarray(indices, dtype=np.int64)]})

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for ``texts`` (L2-normalised), in requests of at most ``max_batch_items``."""
        step = self.max_batch_items
        parts = await asyncio.gather(
            *(self._embed_one(list(texts[i : i + step])) for i in range(0, len(texts), step))
        )
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        matrix = np.concatenate(parts, axis=0).astype(np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)

    async def _embed_one(self, texts: list[str]) -> np.ndarray:
        body = {"model": self.model, "input": texts}
        response = await self.client.post_json(EMBEDDINGS_PATH, body, is_idempotent=True)
        self.num_http_requests += 1
        url = self.client.url(EMBEDDINGS_PATH)
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise RemoteError(url, f"expected {len(texts)} embeddings, got {str(response)[:120]}")
        ordered = sorted(data, key=lambda d: int(d.get("index", 0)))
        try:
            return np.asarray([d["embedding"] for d in ordered], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as err:
            raise RemoteError(url, f"malformed embeddings: {err}") from None
