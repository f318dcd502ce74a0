"""Engines in Ray actors: each instance of a named engine runs in its own actor, placed
by resources on a (multi-node) Ray cluster; the driver keeps the runtime and its
schedulers and talks to each actor through a :class:`RayEngine` proxy.

Needs the ``ray`` extra (``pip install primflow[ray]``).
"""

from primflow.engines.ray_actors.cluster import (
    ActorResources,
    RayPlacementError,
    connect,
    create_actors,
    disconnect,
)
from primflow.engines.ray_actors.host import EngineHost
from primflow.engines.ray_actors.proxy import RayEngine
from primflow.engines.ray_actors.wire import LARGE_VALUE_BYTES, STORED_VALUES, StoredValue

__all__ = [
    "LARGE_VALUE_BYTES",
    "STORED_VALUES",
    "ActorResources",
    "EngineHost",
    "RayEngine",
    "RayPlacementError",
    "StoredValue",
    "connect",
    "create_actors",
    "disconnect",
]
