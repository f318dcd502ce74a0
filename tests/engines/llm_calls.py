"""Helpers of the LLM engine tests: build phase requests, run one call, wait for the
engine thread."""

from __future__ import annotations

import asyncio
from typing import Any

from primflow.engines.base import EngineRequest
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op

SYSTEM = "You are a helpful assistant. Answer in one short sentence."
DOCUMENT = (
    "The Zorblat river flows through the valley of Kestra. It is 412 kilometres long "
    "and its source is Lake Umber, high in the Morrow mountains. Farmers along the "
    "river grow barley and flax, and the town of Vell holds a boat race every spring. "
    "The river freezes in January and thaws in late March."
)


def request(query: str, node: str, op: Op, rid: str | None = None, **params: Any) -> EngineRequest:
    inputs = params.pop("inputs", {})
    on_text = params.pop("on_text", None)
    priority = params.pop("priority", 0.0)
    return EngineRequest(
        query_id=query,
        node=node,
        op=op,
        inputs=inputs,
        params=params,
        llm_request_id=rid or f"{query}/call",
        on_text=on_text,
        priority=priority,
    )


async def one(engine: LlamaEngine, req: EngineRequest) -> dict[str, Any]:
    [future] = engine.submit([req])
    return await future


async def generate(
    engine: LlamaEngine, query: str, question: str, max_tokens: int = 16, **decode: Any
) -> dict[str, Any]:
    await one(
        engine,
        request(
            query, "prefill", Op.LLM_PREFILL, template="{q}", system=SYSTEM, inputs={"q": question}
        ),
    )
    result = await one(
        engine, request(query, "decode", Op.LLM_DECODE, max_tokens=max_tokens, **decode)
    )
    engine.release(query)
    return result


async def wait_until(predicate: Any, timeout_s: float = 30.0) -> None:
    """Wait for the engine thread to catch up (a liveness bound, not a timing assertion)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)
