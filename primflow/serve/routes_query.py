"""``POST /v1/apps/{app}/query``: one question, answered as JSON or as SSE.

The SSE stream is: ``query`` (its id), then ``token`` (answer text as it decodes)
and ``node_done`` (name, op, engine, queue and service time) events as they happen,
then ``done`` (the whole response body) or ``error`` (the error body, with the HTTP
status it would have had).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from primflow.serve.errors import ApiError, error_for
from primflow.serve.guards import require_api_key, require_json
from primflow.serve.responses import query_json, query_response
from primflow.serve.schemas import ErrorBody, QueryRequest, QueryResponse
from primflow.serve.service import RunningQuery, Service, documents_of
from primflow.serve.sse import EventQueue, outcome, sse, stream_query

router = APIRouter(dependencies=[Depends(require_api_key)])

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "missing or wrong API key"),
        (404, "unknown app or collection"),
        (409, "the collection is in use, or already holds those documents"),
        (413, "request body too large"),
        (415, "not JSON (or an upload of an unsupported file type)"),
        (422, "invalid request (the message names the field)"),
        (429, "too many queries queued or running (see Retry-After)"),
        (500, "an engine failed (names the engine and primitive)"),
        (503, "the server is shutting down"),
        (504, "the deadline passed (names the query and what was unfinished)"),
    )
}

AppName = Path(min_length=1, max_length=64, description="a served app, e.g. naive_rag")


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def admit(
    service: Service, app: str, start: Any, *, stream_events: EventQueue | None = None
) -> RunningQuery:
    """Start a query via ``start()``, turning a refusal into its HTTP error."""
    try:
        query: RunningQuery = start()
    except Exception as exc:
        status = {429: "rejected", 503: "draining", 404: "unknown_app"}
        error = error_for(exc, None, service.settings.retry_after_s)
        if error.status in status and app in service.apps:
            service.count_refused(app, status[error.status])
        raise error from None
    if stream_events is not None:
        stream_events.close_when_done(query)
    return query


async def wait_answer(query: RunningQuery, service: Service) -> Any:
    try:
        return await query.task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # this request itself is being cancelled
        raise error_for(asyncio.CancelledError(), query.query_id) from None
    except ApiError:
        raise
    except Exception as exc:
        raise error_for(exc, query.query_id, service.settings.retry_after_s) from None


@router.post(
    "/v1/apps/{app}/query",
    response_model=QueryResponse,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "the answer (JSON), or with stream=true an SSE stream",
            "content": {"text/event-stream": {}},
        },
    },
    dependencies=[Depends(require_json)],
    summary="Ask an application a question",
)
async def query_app(request: Request, body: QueryRequest, app: str = AppName) -> Response:
    service = service_of(request)
    documents = documents_of(body.documents)
    events = EventQueue() if body.stream else None

    def start() -> RunningQuery:
        return service.start_query(
            app,
            body.question,
            documents,
            body.config.changes(),
            deadline_s=body.deadline_s,
            on_text=events.on_text if events else None,
            on_node=events.on_node if events else None,
            collection=body.collection,
            priority=body.priority,
        )

    query = admit(service, app, start, stream_events=events)
    if events is None:
        # Serialized here, once: FastAPI would validate the model again on the way out.
        answer = query_response(await wait_answer(query, service))
        return Response(answer.model_dump_json(), media_type="application/json")
    return stream_query(query, events, _native_events)


async def _native_events(query: RunningQuery, events: EventQueue) -> AsyncIterator[str]:
    yield sse({"query_id": query.query_id, "app": query.app}, "query")
    async for kind, data in events.events():
        yield sse({"text": data} if kind == "token" else data, kind)
    answer, error = outcome(query)
    if answer is not None:
        yield sse(query_json(answer), "done")
    else:
        assert error is not None
        failure = error_for(error, query.query_id)
        yield sse({"status": failure.status, **failure.body()}, "error")
