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

from primflow.api.documents import DocumentError, UnsupportedFileType
from primflow.apps import UnknownAppError
from primflow.collections import CollectionError, CollectionExists, UnknownCollection
from primflow.engines.base import EngineError
from primflow.runtime import QueryCancelled, QueryFailed, QueryTimeout
from primflow.serve.admission import Refused
from primflow.serve.collections import BadUpload, CollectionBusy, SourcesExist
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
    if isinstance(exc, EngineError):  # outside a query: indexing a collection
        return api_error(500, "engine_failure", str(exc), engine=exc.engine, primitive=exc.node)
    if isinstance(exc, QueryCancelled | asyncio.CancelledError):
        message = f"query {query_id!r} was cancelled: the server is shutting down"
        return api_error(503, "cancelled", message, query_id=query_id)
    if isinstance(exc, pydantic.ValidationError):
        return validation_error(exc.errors(), "invalid_config")
    if isinstance(exc, InvalidQuery):
        fields = [{"field": exc.field, "message": str(exc)}]
        return api_error(422, "invalid_request", str(exc), fields=fields)
    collection_error = _collection_error(exc)
    if collection_error is not None:
        return collection_error
    if isinstance(exc, ValueError):
        return api_error(422, "invalid_query", str(exc), query_id=query_id)
    return api_error(500, "internal_error", f"{type(exc).__name__}: {exc}", query_id=query_id)


def validation_error(errors: Any, kind: str = "invalid_request", prefix: str = "") -> ApiError:
    """422 naming each field (``prefix`` goes before each field's path, e.g. ``body``)."""
    fields = _fields(errors)
    if prefix:
        fields = [{**f, "field": ".".join(p for p in (prefix, f["field"]) if p)} for f in fields]
    message = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields)
    return api_error(422, kind, message, fields=fields)


def _collection_error(exc: BaseException) -> ApiError | None:
    """Uploads and collections: 404, 409, 415 or 422 with the reason; None otherwise."""
    if isinstance(exc, UnsupportedFileType):
        return api_error(415, "unsupported_media_type", str(exc))
    if isinstance(exc, DocumentError):
        return api_error(422, "invalid_document", str(exc), fields=_one("files", exc))
    if isinstance(exc, UnknownCollection):
        return api_error(404, "unknown_collection", str(exc))
    if isinstance(exc, CollectionBusy | SourcesExist | CollectionExists):
        return api_error(409, "conflict", str(exc))
    if isinstance(exc, BadUpload):
        return api_error(422, "invalid_upload", str(exc), fields=_one(exc.field, exc))
    if isinstance(exc, CollectionError):
        return api_error(422, "invalid_collection", str(exc))
    return None


def _one(field: str, exc: BaseException) -> list[dict[str, Any]]:
    return [{"field": field, "message": str(exc)[:MAX_MESSAGE_CHARS]}]


def _fields(errors: Any) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
        for e in errors
    ][:20]


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc.errors()).response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return api_error(exc.status_code, kind, str(exc.detail)).response()
