"""``RemoteReranker``: RERANK on a server's rerank endpoint.

Two response shapes: the Jina/Cohere one of vLLM and llama.cpp (``POST /v1/rerank``
with ``query`` and ``documents``, answer ``results[{index, relevance_score}]``) and
Text Embeddings Inference's (``POST /rerank`` with ``query`` and ``texts``, answer
``[{index, score}]``). Invariants: hits come back best first, at most ``top_k``, each
with the server's score; a request with bad inputs fails alone; reranking is
idempotent, so failed requests are retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from primflow.engines.base import Engine, EngineError, EngineKind, EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile
from primflow.engines.remote.http import ClientSettings, RemoteClient, RemoteError
from primflow.engines.rerank.rerankers import rerank_job
from primflow.graph.ops import HITS
from primflow.values import Hit

RERANK_SHAPES = {"cohere": "/v1/rerank", "tei": "/rerank"}


class RemoteReranker(Engine):
    kind = EngineKind.RERANKER

    def __init__(
        self,
        name: str,
        settings: ClientSettings,
        model: str,
        *,
        shape: str = "cohere",
        profile: LatencyProfile | None = None,
    ) -> None:
        super().__init__(name, profile)
        if shape not in RERANK_SHAPES:
            raise ValueError(f"rerank shape must be one of {', '.join(RERANK_SHAPES)}")
        self.client = RemoteClient(settings)
        self._tasks: set[asyncio.Task[None]] = set()  # running requests (kept alive)
        self.model = model
        self.shape = shape

    @property
    def max_concurrent_batches(self) -> int:
        return self.client.settings.max_concurrent_requests

    async def start(self) -> None:
        # TEI has no model list; a rerank of one passage checks URL and model alike.
        try:
            await self.scores("check", ["check"])
        except RemoteError as err:
            raise EngineError(self.name, "<start>", f"the reranker does not answer: {err}") from err

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.close()

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outputs]] = []
        for request in batch:
            future: asyncio.Future[Outputs] = loop.create_future()
            request.future = future
            futures.append(future)
            try:
                question, hits, top_k = self._job(request)
            except EngineError as err:
                future.set_exception(err)
                continue
            task = asyncio.create_task(self._run(request.node, question, hits, top_k, future))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return futures

    async def _run(
        self, node: str, question: str, hits: list[Hit], top_k: int, future: asyncio.Future[Outputs]
    ) -> None:
        try:
            scores = await self.scores(question, [h.chunk.text for h in hits]) if hits else []
        except RemoteError as err:
            if not future.done():
                future.set_exception(EngineError(self.name, node, f"rerank failed: {err}"))
            return
        ranked = sorted(zip(scores, range(len(hits)), strict=True), key=lambda s: (-s[0], s[1]))
        result = [Hit(hits[i].chunk, float(score)) for score, i in ranked[:top_k]]
        if not future.done():
            future.set_result({HITS: result})

    async def scores(self, question: str, texts: list[str]) -> list[float]:
        """The server's relevance score of each text, in the texts' order."""
        path = RERANK_SHAPES[self.shape]
        if self.shape == "tei":
            body: dict[str, Any] = {"query": question, "texts": texts}
        else:
            body = {"model": self.model, "query": question, "documents": texts}
        response = await self.client.post_json(path, body, is_idempotent=True)
        rows = response if self.shape == "tei" else (response or {}).get("results")
        score_key = "score" if self.shape == "tei" else "relevance_score"
        url = self.client.url(path)
        if not isinstance(rows, list) or len(rows) != len(texts):
            raise RemoteError(url, f"expected {len(texts)} scores, got {str(response)[:120]}")
        scores = [0.0] * len(texts)
        try:
            for row in rows:
                scores[int(row["index"])] = float(row[score_key])
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise RemoteError(url, f"malformed rerank answer: {err}") from None
        return scores

    def _job(self, request: EngineRequest) -> tuple[str, list[Hit], int]:
        job = rerank_job(self.name, request)
        return job.question, list(job.hits), job.top_k
