"""Engine stacks for the ray tier: the same fakes in-process and in Ray actors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray

from primflow.engines.ray_actors import RayEngine
from primflow.session import fake_factory
from primflow.session.engine_config import config_factory, parse_engine_config
from primflow.session.stack import EngineFactory, EngineStack

LATENCY_SCALE = 0.01


def ray_stack(
    apps: list[str], engines: Mapping[str, Mapping[str, Any]], factory: EngineFactory | None = None
) -> EngineStack:
    """``engines``: name -> the ``backend: ray`` entry's fields (other engines in-process)."""
    entries = {name: {"backend": "ray", **fields} for name, fields in engines.items()}
    config = parse_engine_config({"engines": entries}, "<test>")
    inner = factory or fake_factory(LATENCY_SCALE)
    return EngineStack.for_apps(apps, config_factory(config, inner))


def local_stack(
    apps: list[str], factory: EngineFactory | None = None, num_cores: int | None = None
) -> EngineStack:
    return EngineStack.for_apps(apps, factory or fake_factory(LATENCY_SCALE), num_cores=num_cores)


def instances(stack: EngineStack, name: str) -> list[RayEngine]:
    found = stack.instances[name]
    assert all(isinstance(engine, RayEngine) for engine in found)
    return [engine for engine in found if isinstance(engine, RayEngine)]


def attribute(engine: RayEngine, name: str) -> Any:
    """An attribute of the engine inside the actor."""
    return ray.get(engine.actor.engine_attribute.remote(name), timeout=30)
