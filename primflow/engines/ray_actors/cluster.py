"""Connecting to Ray and creating engine actors by their resources.

Invariants:

- primflow connects to a running cluster (``address``) or, with none given and Ray not
  yet initialised, starts a local one (dashboard off); it shuts down only a Ray it
  started itself, when the last engine that needed it closes.
- Each actor reserves its resources (``num_cpus``, ``num_gpus``, custom resources) and
  may require node labels (``label_selector``), so Ray places it on a node that has
  them; one that cannot be placed within
  ``placement_timeout_s`` is an error naming the engine and what it asked for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError

from primflow.engines.base import Engine
from primflow.engines.placement import CoreBudget
from primflow.engines.ray_actors.host import EngineHost
from primflow.engines.ray_actors.wire import EngineDescription

_lock = threading.Lock()
_num_users = 0
_is_ours = False


class RayPlacementError(RuntimeError):
    """An engine actor could not be created or placed on the cluster."""


@dataclass(frozen=True)
class ActorResources:
    """What one engine instance reserves on its node, and how often Ray restarts it."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: Mapping[str, float] = field(default_factory=dict)
    label_selector: Mapping[str, str] = field(default_factory=dict)  # node labels
    max_restarts: int = 1
    placement_timeout_s: float = 60.0

    def describe(self) -> str:
        parts = [f"num_cpus={self.num_cpus:g}", f"num_gpus={self.num_gpus:g}"]
        parts += [f"{key}={value:g}" for key, value in sorted(self.resources.items())]
        parts += [f"label {key}={value}" for key, value in sorted(self.label_selector.items())]
        return ", ".join(parts)

    @property
    def num_cores(self) -> int:
        """Threads the engine may use: the CPUs it reserved, at least one."""
        return max(1, round(self.num_cpus))


def connect(address: str | None = None) -> None:
    """Make sure Ray is initialised (see the module docstring); pair with ``disconnect``."""
    global _num_users, _is_ours
    with _lock:
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                # A private local cluster on the loopback: nothing else talks to it.
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                options["_node_ip_address"] = "127.0.0.1"
            ray.init(address=address, **options)
            _is_ours = address is None
        _num_users += 1


def disconnect() -> None:
    global _num_users, _is_ours
    with _lock:
        _num_users = max(0, _num_users - 1)
        if _num_users == 0 and _is_ours and ray.is_initialized():
            ray.shutdown()
            _is_ours = False


def create_actors(
    name: str,
    build: Callable[[CoreBudget], Engine],
    resources: ActorResources,
    num_instances: int,
) -> list[tuple[Any, EngineDescription]]:
    """Create ``num_instances`` actors hosting the engine ``build`` makes; wait until each
    is placed and has built its engine."""
    options: dict[str, Any] = {
        "num_cpus": resources.num_cpus,
        "num_gpus": resources.num_gpus,
        "max_restarts": resources.max_restarts,
        "max_task_retries": 0,  # a batch is never silently re-run after a crash
        "max_concurrency": 1000,
    }
    if resources.resources:
        options["resources"] = dict(resources.resources)
    if resources.label_selector:
        options["label_selector"] = dict(resources.label_selector)
    host_class: Any = ray.remote(EngineHost).options(**options)
    actors: list[Any] = [
        host_class.remote(build, resources.num_cores) for _ in range(num_instances)
    ]
    try:
        descriptions = ray.get(
            [actor.describe.remote() for actor in actors], timeout=resources.placement_timeout_s
        )
    except GetTimeoutError:
        for actor in actors:
            ray.kill(actor)
        raise RayPlacementError(
            f"engine {name!r}: Ray placed no actor within {resources.placement_timeout_s:g} s "
            f"for {resources.describe()}; does a node of the cluster have these resources?"
        ) from None
    except ray.exceptions.RayActorError as exc:
        raise RayPlacementError(f"engine {name!r}: its actor failed to start: {exc}") from exc
    return list(zip(actors, descriptions, strict=True))
