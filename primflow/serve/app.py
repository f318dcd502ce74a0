"""The FastAPI app factory: routes, error handlers, limits, and the service lifespan.

``create_app(settings)`` returns an app whose lifespan starts the engines once (every
app then runs on them) and closes them at shutdown; ``app.state.service`` is the
:class:`~primflow.serve.service.Service`. Test controls are mounted only with fake
engines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from primflow.serve import routes_admin, routes_chat, routes_collections, routes_query
from primflow.serve.errors import install_handlers
from primflow.serve.guards import BodyLimit
from primflow.serve.service import Service
from primflow.serve.settings import ServeSettings

DESCRIPTION = """Ask primflow applications questions over HTTP. Every app runs on one
shared stack of embedded engines, scheduled primitive by primitive across queries.
`POST /v1/apps/{app}/query` answers as JSON or Server-Sent Events;
`POST /v1/chat/completions` is OpenAI-compatible (`model` = app name);
`POST /v1/collections/{name}/documents` indexes documents once into a persistent
collection that queries then name (`"collection": "name"`)."""


def create_app(settings: ServeSettings) -> FastAPI:
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="primflow",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = service
    install_handlers(app)
    app.include_router(routes_admin.router)
    app.include_router(routes_admin.guarded)
    app.include_router(routes_query.router)
    app.include_router(routes_chat.router)
    app.include_router(routes_collections.router)
    if settings.engine_backend == "fake":
        from primflow.serve import routes_testing

        app.include_router(routes_testing.router)
    app.add_middleware(
        BodyLimit,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    return app
