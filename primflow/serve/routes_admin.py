"""The server's own routes: apps and their graphs, liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from primflow.api.lower import lower
from primflow.apps import UnknownAppError
from primflow.graph.ir import Graph
from primflow.graph.printers import to_dot, to_json, to_mermaid, to_text
from primflow.passes import optimize
from primflow.serve.errors import error_for
from primflow.serve.guards import require_api_key
from primflow.serve.routes_query import ERROR_RESPONSES, AppName, service_of
from primflow.serve.schemas import AppInfo

router = APIRouter()
guarded = APIRouter(dependencies=[Depends(require_api_key)])


@router.get("/health", summary="liveness: the process answers")
async def health(request: Request) -> dict[str, object]:
    service = service_of(request)
    return {"status": "draining" if service.admission.is_draining else "ok"}


@router.get(
    "/ready",
    summary="readiness: every engine healthy and the server not draining",
    responses={503: {"description": "an engine is unhealthy, or the server is draining"}},
)
async def ready(request: Request) -> JSONResponse:
    service = service_of(request)
    engines = service.engine_health()
    unhealthy = sorted(name for name, h in engines.items() if not h["is_healthy"])
    is_ready = not unhealthy and not service.admission.is_draining
    body = {
        "status": "ready" if is_ready else "not_ready",
        "is_draining": service.admission.is_draining,
        "unhealthy_engines": unhealthy,
        "engines": engines,
        "num_active_queries": service.admission.num_active,
    }
    return JSONResponse(body, status_code=200 if is_ready else 503)


@guarded.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    body = service_of(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@guarded.get("/v1/apps", summary="the served apps with their templates")
async def list_apps(request: Request) -> dict[str, list[AppInfo]]:
    service = service_of(request)
    infos = []
    for app in service.apps.values():
        template = app.template()
        components = [
            {"name": c.name, "kind": c.kind, "engine": c.engine} for c in template.components
        ]
        infos.append(
            AppInfo(
                name=app.name,
                description=app.description,
                needs_documents=any(c.kind == "chunk" for c in template.components),
                components=components,
                default_config=app.default_config.model_dump(mode="json", exclude={"prompts"}),
            )
        )
    return {"apps": infos}


@guarded.get(
    "/v1/apps/{app}/graph",
    summary="an app's primitive graph for its sample query (e-graph with optimized=true)",
    responses=ERROR_RESPONSES,
)
async def app_graph(
    request: Request,
    app: str = AppName,
    optimized: bool = Query(False, description="after the optimization passes"),
    format: Literal["json", "text", "dot", "mermaid"] = Query("json"),
) -> Response:
    service = service_of(request)
    if app not in service.apps:
        served = ", ".join(service.apps)
        raise error_for(UnknownAppError(f"unknown app {app!r}; this server serves: {served}"), None)
    application = service.apps[app]
    profiles = service.stack.profiles if service.stack is not None else None

    def build() -> Graph:
        graph = lower(application.template(), application.sample_query())
        return optimize(graph, profiles)[0] if optimized else graph

    graph = await asyncio.to_thread(build)  # lowering reads the sample documents
    if format == "json":
        return JSONResponse(to_json(graph))
    if format == "dot":
        return PlainTextResponse(to_dot(graph, app))
    if format == "mermaid":
        return PlainTextResponse(to_mermaid(graph))
    return PlainTextResponse(to_text(graph))
