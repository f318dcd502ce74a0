"""``POST /v1/chat/completions``: a primflow app behind OpenAI's chat API.

``model`` names the app; the last user message is the question; ``max_tokens`` (or
``max_completion_tokens``) sets the answer length; ``service_tier`` (or primflow's
``priority``) the query's priority. Non-streaming answers are one
``chat.completion``; streaming ones are ``chat.completion.chunk`` events ending with
``data: [DONE]``, as OpenAI's clients expect. Errors keep OpenAI's ``{"error": ...}``
shape; an error after the stream started arrives as a last chunk-less ``error`` event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request

from primflow.serve.errors import api_error, error_for
from primflow.serve.guards import require_api_key, require_json
from primflow.serve.routes_query import ERROR_RESPONSES, admit, service_of, wait_answer
from primflow.serve.schemas import ChatCompletionRequest
from primflow.serve.service import RunningQuery, documents_of
from primflow.serve.sse import EventQueue, outcome, sse, stream_query

router = APIRouter(dependencies=[Depends(require_api_key)])


def _question(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user" and message.text().strip():
            return message.text()
    raise api_error(422, "invalid_request", "messages: no user message with text to answer")


@router.post(
    "/v1/chat/completions",
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="OpenAI-compatible chat completion (model = app name)",
)
async def chat_completions(request: Request, body: ChatCompletionRequest) -> Any:
    service = service_of(request)
    question = _question(body)
    max_tokens = body.max_completion_tokens or body.max_tokens
    changes = {"max_tokens": max_tokens} if max_tokens else {}
    documents = documents_of(body.documents)
    events = EventQueue() if body.stream else None

    def start() -> RunningQuery:
        return service.start_query(
            body.model,
            question,
            documents,
            changes,
            deadline_s=body.deadline_s,
            on_text=events.on_text if events else None,
            collection=body.collection,
            priority=body.query_priority(),
        )

    query = admit(service, body.model, start, stream_events=events)
    created = int(time.time())
    completion_id = f"chatcmpl-{query.query_id}"
    if events is None:
        answer = await wait_answer(query, service)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "stop",
                }
            ],
        }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
        )

    async def render(query: RunningQuery, events: EventQueue) -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        async for kind, data in events.events():
            if kind == "token":
                yield chunk({"content": data})
        answer, error = outcome(query)
        if answer is None:
            assert error is not None
            yield sse(error_for(error, query.query_id).body())
            return
        yield chunk({}, "stop")
        yield sse("[DONE]")

    return stream_query(query, events, render)
