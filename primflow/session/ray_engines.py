"""Builds an engine's instances as Ray actors from its ``backend: ray`` entry.

The engine inside each actor is the one the embedded factory builds (the same code as
in-process); this module only turns the entry's resources into actor options and wraps
each actor in a :class:`~primflow.engines.ray_actors.RayEngine` proxy. Ray is imported
only when a ``backend: ray`` engine is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Protocol

from primflow.engines.base import Engine, EngineKind
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.session.stack import EngineFactory, StackError


class RayEntry(Protocol):
    """What an engine file's ``backend: ray`` entry says (engine_config.RayBackend)."""

    @property
    def num_instances(self) -> int: ...
    @property
    def num_cpus(self) -> float: ...
    @property
    def num_gpus(self) -> float: ...
    @property
    def resources(self) -> Mapping[str, float]: ...
    @property
    def label_selector(self) -> Mapping[str, str]: ...
    @property
    def max_restarts(self) -> int: ...
    @property
    def placement_timeout_s(self) -> float: ...


def build_ray_instances(
    name: str,
    kind: EngineKind,
    entry: RayEntry,
    embedded: EngineFactory,
    profile: LatencyProfile | None,
    address: str | None,
) -> list[Engine]:
    """``entry.num_instances`` actors, each hosting what ``embedded`` builds for ``name``."""
    try:
        from primflow.engines.ray_actors import (
            ActorResources,
            RayEngine,
            connect,
            create_actors,
            disconnect,
        )
    except ImportError as exc:
        raise StackError(
            f"engine {name!r} has backend: ray, but Ray is not installed ({exc}); "
            "install it with pip install 'primflow[ray]'"
        ) from None
    resources = ActorResources(
        num_cpus=entry.num_cpus,
        num_gpus=entry.num_gpus,
        resources=dict(entry.resources),
        label_selector=dict(entry.label_selector),
        max_restarts=entry.max_restarts,
        placement_timeout_s=entry.placement_timeout_s,
    )
    connect(address)
    build = partial(_build_one, embedded, name, kind, profile)
    try:
        actors = create_actors(name, build, resources, entry.num_instances)
    except Exception:
        disconnect()
        raise
    # Each proxy disconnects when it closes: one connection per instance, this one's
    # included (Ray shuts down, if primflow started it, when the last one closes).
    for _ in actors[1:]:
        connect(address)
    return [
        RayEngine(name, index, actor, description)
        for index, (actor, description) in enumerate(actors)
    ]


def _build_one(
    embedded: EngineFactory,
    name: str,
    kind: EngineKind,
    profile: LatencyProfile | None,
    budget: CoreBudget,
) -> Engine:
    """Runs inside the actor: the embedded engine, exactly one instance of it."""
    built = embedded(name, kind, budget, profile)
    if not isinstance(built, Engine):
        raise StackError(f"engine {name!r}: the factory inside a Ray actor must build one engine")
    return built
