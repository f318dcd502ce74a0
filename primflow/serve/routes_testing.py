"""Test controls of the fake engines (mounted only with ``--engine-backend fake``).

``POST /_testing/engines/{engine}/hold|release|fail|recover`` and
``GET /_testing/state``: what the runtime, the server and each engine still hold, so a
test driving the real HTTP server can keep engines busy, break one, and assert that
nothing of an ended query is left anywhere.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from primflow.serve.errors import api_error
from primflow.serve.fake_control import ControlledEngine
from primflow.serve.routes_query import service_of

router = APIRouter(prefix="/_testing", include_in_schema=False)


class FailRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marker: str = Field(default="", max_length=200, description="fail requests mentioning it")
    reason: str = Field(default="injected failure", max_length=200)


def _engine(request: Request, name: str) -> ControlledEngine:
    stack = service_of(request).stack
    engine = stack.engines.get(name) if stack is not None else None
    if not isinstance(engine, ControlledEngine):
        raise api_error(404, "unknown_engine", f"no controlled engine {name[:64]!r}")
    return engine


@router.post("/engines/{name}/hold")
async def hold(request: Request, name: str) -> dict[str, str]:
    engines = _all(request) if name == "all" else [_engine(request, name)]
    for engine in engines:
        engine.hold()
    return {"held": ",".join(e.name for e in engines)}


@router.post("/engines/{name}/release")
async def release(request: Request, name: str) -> dict[str, str]:
    engines = _all(request) if name == "all" else [_engine(request, name)]
    for engine in engines:
        engine.release_gate()
    return {"released": ",".join(e.name for e in engines)}


@router.post("/engines/{name}/fail")
async def fail(request: Request, name: str, body: FailRequest) -> dict[str, str]:
    _engine(request, name).fail(body.marker, body.reason)
    return {"failing": name}


@router.post("/engines/{name}/recover")
async def recover(request: Request, name: str) -> dict[str, str]:
    _engine(request, name).recover()
    return {"recovered": name}


@router.get("/state")
async def state(request: Request) -> dict[str, Any]:
    service = service_of(request)
    assert service.session is not None
    runtime = service.session.runtime
    return {
        "runtime": {
            "num_running_queries": runtime.num_running_queries,
            "num_open_requests": runtime.num_open_requests,
            "num_queued": {n: w.scheduler.num_queued for n, w in runtime.workers.items()},
        },
        "server": {
            "num_active_queries": service.admission.num_active,
            "num_running_tasks": len(service.running),
            "num_tracked_queries": service.hook.num_tracked_queries,
        },
        "engines": {engine.name: engine.state() for engine in _all(request)},
    }


def _all(request: Request) -> list[ControlledEngine]:
    stack = service_of(request).stack
    engines = stack.engines.values() if stack is not None else []
    return [e for e in engines if isinstance(e, ControlledEngine)]
