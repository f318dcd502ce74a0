"""How failures become HTTP answers: one ``{"error": {...}}`` body shape for all.

``ApiError`` carries a status and an :class:`~primflow.serve.schemas.ErrorDetail`;
:func:`error_for` maps what a query can end in (refusal, unknown app, bad config,
deadline, engine failure, cancellation) to one. Validation errors name each field and
never echo the offending input back (it may be huge or hostile).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from primflow.apps import UnknownAppError
from primflow.runtime import QueryCancelled, QueryFailed, QueryTimeout
from primflow.serve.admission import Refused
from primflow.serve.schemas import ErrorDetail
from primflow.serve.service import InvalidQuery

MAX_MESSAGE_CHARS = 2_000


class ApiError(Exception):
    def __init__(
        self, status: int, detail: ErrorDetail, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail.message)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.detail.model_dump(exclude_none=True)}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(status: int, kind: str, message: str, **fields: Any) -> ApiError:
    return ApiError(status, ErrorDetail(type=kind, message=message[:MAX_MESSAGE_CHARS], **fields))


def error_for(exc: BaseException, query_id: str | None, retry_after_s: int = 1) -> ApiError:
    """The HTTP answer for a query that ended in ``exc``."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Refused):
        if exc.reason == "full":
            error = api_error(429, "overloaded", str(exc))
            error.headers["Retry-After"] = str(retry_after_s)
            return error
        return api_error(503, "shutting_down", str(exc))
    if isinstance(exc, UnknownAppError):
        return api_error(404, "unknown_app", str(exc))
    if isinstance(exc, QueryTimeout):
        return api_error(
            504,
            "deadline_exceeded",
            str(exc),
            query_id=exc.query_id,
            unfinished=exc.pending_nodes,
        )
    if isinstance(exc, QueryFailed):
        return api_error(
            500,
            "engine_failure",
            str(exc),
            query_id=exc.query_id,
            engine=exc.engine,
            primitive=exc.node,
        )
    if isinstance(exc, QueryCancelled | asyncio.CancelledError):
        message = f"query {query_id!r} was cancelled: the server is shutting down"
        return api_error(503, "cancelled", message, query_id=query_id)
    if isinstance(exc, pydantic.ValidationError):
        return api_error(
            422, "invalid_config", _fields_message(exc.errors()), fields=_fields(exc.errors())
        )
    if isinstance(exc, InvalidQuery):
        fields = [{"field": exc.field, "message": str(exc)}]
        return api_error(422, "invalid_request", str(exc), fields=fields)
    if isinstance(exc, ValueError):
        return api_error(422, "invalid_query", str(exc), query_id=query_id)
    return api_error(500, "internal_error", f"{type(exc).__name__}: {exc}", query_id=query_id)


def _fields(errors: Any) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
        for e in errors
    ][:20]


def _fields_message(errors: Any) -> str:
    return "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in _fields(errors))


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        return api_error(
            422, "invalid_request", _fields_message(errors), fields=_fields(errors)
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return api_error(exc.status_code, kind, str(exc.detail)).response()
