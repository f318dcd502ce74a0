"""``GET /trace/{query_id}``: a recent query's trace page (``/json``: its explanation).

Also installs the ``traceparent`` middleware when ``PRIMFLOW_TRACE`` names an exporter
(``install``, called by the app factory).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse

from primflow.serve.errors import api_error
from primflow.serve.guards import require_api_key
from primflow.serve.tracing import ServeTracing
from primflow.tracing.setup import exporter_from_env

router = APIRouter(dependencies=[Depends(require_api_key)])
QueryId = Path(min_length=1, max_length=128, description="a query id the server returned")


def _explanation(request: Request, query_id: str) -> Any:
    tracing: ServeTracing = request.app.state.service.tracing
    found = tracing.recorder.explanation(query_id) if tracing.recorder is not None else None
    if found is None:
        raise api_error(
            404,
            "unknown_query",
            f"no finished query {query_id[:128]!r} among the last {tracing.max_num_queries}",
        )
    return found


@router.get("/trace/{query_id}", response_class=HTMLResponse, summary="a query's trace page")
async def trace_page(request: Request, query_id: str = QueryId) -> HTMLResponse:
    from primflow.explain.html import render_page

    explanation = _explanation(request, query_id)
    page = await asyncio.to_thread(render_page, explanation)  # plotly takes ~0.1 s
    return HTMLResponse(page)


@router.get("/trace/{query_id}/json", summary="a query's explanation as JSON")
async def trace_json(request: Request, query_id: str = QueryId) -> JSONResponse:
    return JSONResponse(_explanation(request, query_id).to_json())


def install(app: FastAPI) -> None:
    """The trace routes, and the ``traceparent`` middleware when tracing is on."""
    app.include_router(router)
    if exporter_from_env() != "off":
        from primflow.tracing.asgi import TraceContextMiddleware

        app.add_middleware(TraceContextMiddleware)
