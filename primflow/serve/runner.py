"""Running the app under uvicorn, with a draining shutdown.

The first SIGTERM or SIGINT starts a drain: new queries get 503, running ones have
``drain_timeout_s`` to finish (then they are cancelled), and only then does uvicorn
stop and the lifespan close the engines. A second signal exits at once. The line
``primflow serve: ready at URL`` is printed (and flushed) once the socket listens, with
the port really bound (``--port 0`` picks a free one).

The engines start before uvicorn does, in the same event loop, so an engine that cannot
start (a remote server that does not answer, a model it does not serve, a missing
package) is one ``primflow serve: ...`` line and exit code 3, not a traceback.
"""

from __future__ import annotations

import asyncio
import sys
from types import FrameType
from typing import Any

import uvicorn

from primflow.engines.base import EngineError
from primflow.serve.app import create_app
from primflow.serve.service import Service
from primflow.serve.settings import ServeSettings
from primflow.session.factories import EngineUnavailable
from primflow.session.stack import StackError

EXIT_ENGINES_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130
STARTUP_ERRORS = (EngineError, EngineUnavailable, StackError, ImportError, OSError)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service
        self._drain: asyncio.Task[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.should_exit:  # the lifespan or the bind failed
            return
        settings = self.service.settings
        port = settings.port
        for server in self.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
        engines = ", ".join(self.service.stack.engines) if self.service.stack else ""
        print(
            f"primflow serve: ready at http://{settings.host}:{port}\n"
            f"  apps: {', '.join(self.service.apps)}\n"
            f"  engines ({_stack_kind(settings)}, {settings.placement} placement): {engines}\n"
            f"  collections: {self.service.collections.store.root}\n"
            f"  max queued queries: {settings.max_queued_queries}; "
            f"API key: {'required' if settings.api_key else 'none'}; "
            f"docs: http://{settings.host}:{port}/docs",
            flush=True,
        )

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is not None or self._loop is None:
            self.should_exit = self.force_exit = True
            return
        print("primflow serve: draining (a second signal exits at once)", flush=True)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> bool:
        timeout_s = self.service.settings.drain_timeout_s
        is_clean = await self.service.drain(timeout_s)
        if not is_clean:
            print(f"primflow serve: cancelled queries still running after {timeout_s:g} s")
        self.should_exit = True
        return is_clean


def _stack_kind(settings: ServeSettings) -> str:
    if settings.engines_file is not None:
        return f"{settings.engine_backend}, remote from {settings.engines_file.name}"
    return settings.engine_backend


def serve(settings: ServeSettings) -> int:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = DrainingServer(config, app.state.service)
    try:
        code = asyncio.run(_started_then_served(server, app.state.service))
    except KeyboardInterrupt:  # Ctrl-C while the engines were still starting
        print("primflow serve: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    sys.stdout.flush()
    return code


async def _started_then_served(server: DrainingServer, service: Service) -> int:
    try:
        await service.start()
    except STARTUP_ERRORS as exc:
        print(f"primflow serve: the engines did not start: {exc}", file=sys.stderr, flush=True)
        return EXIT_ENGINES_UNAVAILABLE
    try:
        await server.serve()
    finally:
        await service.close()  # the lifespan closed it already unless uvicorn failed early
    return 0 if server.started else 1
