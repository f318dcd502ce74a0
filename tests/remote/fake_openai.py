"""A small fake OpenAI-compatible server (FastAPI, on loopback in a thread) that records
every request body: for dialect fields the real llama-cpp-python server ignores
(vLLM/SGLang ``priority``, vLLM ``guided_json``, llama.cpp ``cache_prompt`` and
``timings``). It never stands in for the real server's cases (test_llama_server.py)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from remote_servers import free_port

from primflow.engines.base import EngineRequest
from primflow.engines.remote import RemoteLLMEngine
from primflow.graph.ir import Op

ANSWER = '["alpha", "beta", "gamma"]'


class FakeServer:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        # End streams with [DONE] after the first piece, no finish_reason (as
        # llama-cpp-python's server does when another request waits).
        self.is_cutting_streams = False
        self.headers: list[tuple[str, dict[str, str]]] = []  # per request, like bodies
        self.port = free_port()
        self.app = self._build()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def bodies_at(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.bodies if p == path]

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            return await self._generate("/v1/chat/completions", request)

        @app.post("/v1/completions")
        async def completions(request: Request) -> Any:
            return await self._generate("/v1/completions", request)

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.bodies.append(("/v1/embeddings", body))
            self.headers.append(("/v1/embeddings", dict(request.headers)))
            rows = [[float(len(t)), 1.0, 0.0] for t in body["input"]]
            return {"data": [{"index": i, "embedding": r} for i, r in enumerate(rows)]}

        @app.post("/v1/rerank")
        async def rerank(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.bodies.append(("/v1/rerank", body))
            scores = [float(len(d)) for d in body["documents"]]
            return {"results": [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]}

        @app.post("/rerank")
        async def rerank_tei(request: Request) -> list[dict[str, Any]]:
            body = await request.json()
            self.bodies.append(("/rerank", body))
            return [{"index": i, "score": float(len(t))} for i, t in enumerate(body["texts"])]

        return app

    async def _generate(self, path: str, request: Request) -> Any:
        body = await request.json()
        self.bodies.append((path, body))
        self.headers.append((path, dict(request.headers)))
        is_chat = path.endswith("chat/completions")
        usage = {"prompt_tokens": 20, "completion_tokens": 3}
        usage["prompt_tokens_details"] = {"cached_tokens": 12}  # type: ignore[assignment]
        if not body.get("stream"):
            choice = {"message": {"content": "x"}} if is_chat else {"text": "x"}
            return JSONResponse({"choices": [choice], "usage": usage})

        def events() -> Iterator[str]:
            pieces = (ANSWER[:7], ANSWER[7:15], ANSWER[15:])
            for number, piece in enumerate(pieces[:1] if self.is_cutting_streams else pieces):
                finish = "stop" if number == len(pieces) - 1 else None
                text: dict[str, Any] = {"delta": {"content": piece}} if is_chat else {"text": piece}
                choice = {**text, "finish_reason": finish}
                yield f"data: {json.dumps({'choices': [choice]})}\n\n"
            final = {"choices": [], "usage": usage, "timings": {"cache_n": 5}}
            yield f"data: {json.dumps(final)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


async def prefill_and_decode(engine: RemoteLLMEngine, params: dict[str, Any]) -> dict[str, Any]:
    """Start ``engine``, run one LLM call (a prefill of "Say hi", then a decode with
    ``params``) and close it; the decode's outputs."""
    await engine.start()
    try:
        prefill = EngineRequest(
            "q", "p", Op.LLM_PREFILL, {}, {"template": "Say hi"}, llm_request_id="c"
        )
        decode = EngineRequest("q", "d", Op.LLM_DECODE, {}, params, llm_request_id="c")
        await asyncio.gather(*engine.submit([prefill]))
        (result,) = await asyncio.gather(*engine.submit([decode]))
        return dict(result)
    finally:
        await engine.close()
