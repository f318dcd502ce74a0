"""The embedded engine stack: the named engines the applications run on, built once.

``EngineStack`` owns the engines (their start and close) and the core budget they
share. Invariants:

- Engine names are the ones the app templates use (``llm``, ``judge``, ``embedder``,
  ``vector_index``, ``reranker``, ``web_search``); ``judge`` is its own LLM engine even
  when it loads the same model file as ``llm``, so the two never share a scheduler.
  A function component's engine (``python`` by default) is a function engine; any
  other name is a user's own engine, declared with its kind (``custom_engines``) and
  built by the user's factory.
- ``shared`` placement: every engine may use every core, and the busy engines split
  them (``CoreBudget`` SHARED). ``dedicated``: each engine a fixed share (1 core each on
  this machine), as if it had its own device.
- Runtimes and baselines get *borrowed* views of the engines (:meth:`borrowed`):
  closing a runtime never closes the stack's engines, so one stack serves primflow,
  the baselines and every ablation side by side on the very same engines.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from primflow.engines.base import Engine, EngineHealth, EngineKind, EngineRequest, Outputs
from primflow.engines.placement import CoreBudget, Placement
from primflow.engines.profile import LatencyProfile, load_profiles

if TYPE_CHECKING:
    from primflow.apps import App

# Every engine name a built-in component may ask for, and its kind.
ENGINE_KINDS: dict[str, EngineKind] = {
    "llm": EngineKind.LLM,
    "judge": EngineKind.LLM,
    "embedder": EngineKind.EMBEDDER,
    "vector_index": EngineKind.VECTOR_INDEX,
    "reranker": EngineKind.RERANKER,
    "web_search": EngineKind.WEB_SEARCH,
}

# Busy engines split the cores in this order when they do not divide evenly.
CORE_PRIORITY = ("llm", "judge", "embedder", "reranker", "vector_index", "web_search")

_log = logging.getLogger(__name__)

# A factory returns one engine, or several instances of it (e.g. Ray actors), which
# the engine's scheduler then balances.
EngineFactory = Callable[
    [str, EngineKind, CoreBudget, LatencyProfile | None], Engine | Sequence[Engine]
]


class StackError(RuntimeError):
    """The stack cannot be built (unknown engine name, engine missing, bad profile file)."""


def engines_for_apps(
    apps: Iterable[App | str], custom_engines: Mapping[str, EngineKind] | None = None
) -> dict[str, EngineKind]:
    """The engine names (and kinds) the given applications' templates use; an app is
    a built-in app's name or a user's own :class:`~primflow.apps.App`.
    ``custom_engines`` names the user's own engines and their kinds (a name there may
    also take over a built-in one)."""
    from primflow.api.function import FunctionComponent
    from primflow.apps import get_app

    custom = dict(custom_engines or {})
    needed: dict[str, EngineKind] = {}
    for app in apps:
        resolved = get_app(app) if isinstance(app, str) else app
        for component in resolved.template().components:
            is_function = isinstance(component, FunctionComponent)
            for engine in component.engine_names():
                kind = custom.get(engine) or ENGINE_KINDS.get(engine)
                if kind is None and is_function:
                    kind = EngineKind.FUNCTION
                if kind is None:
                    known = ", ".join([*ENGINE_KINDS, *custom])
                    raise StackError(
                        f"app {resolved.name!r}: component {component.name!r} uses engine "
                        f"{engine!r}, which the engine stack does not build (it builds: "
                        f"{known}; declare your own with custom_engines={{name: kind}})"
                    )
                needed[engine] = kind
    return dict(sorted(needed.items(), key=lambda kv: _core_rank(kv[0])))


def _core_rank(name: str) -> tuple[int, str]:
    """Built-in engines in ``CORE_PRIORITY`` order, then the others by name."""
    return (CORE_PRIORITY.index(name) if name in CORE_PRIORITY else len(CORE_PRIORITY), name)


# Kinds whose batches take milliseconds here: one thread, never a contender for cores.
LIGHT_KINDS = frozenset({EngineKind.VECTOR_INDEX, EngineKind.WEB_SEARCH})


def make_budget(
    placement: Placement | str, engine_kinds: Mapping[str, EngineKind], num_cores: int | None
) -> CoreBudget:
    placement = Placement(placement)
    if placement is Placement.DEDICATED:
        # One core per engine: with more engines than cores they oversubscribe only when
        # several are busy at once, as separate devices would never do.
        shares = dict.fromkeys(engine_kinds, 1)
        return CoreBudget(num_cores, Placement.DEDICATED, CORE_PRIORITY, shares)
    light = [name for name, kind in engine_kinds.items() if kind in LIGHT_KINDS]
    return CoreBudget(num_cores, Placement.SHARED, CORE_PRIORITY, light_engines=light)


def read_profiles(path: Path | None) -> dict[str, LatencyProfile]:
    """Profiles saved by `primflow profile` (engine name or kind -> profile), or none."""
    if path is None or not path.exists():
        return {}
    try:
        return load_profiles(path)
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(f"cannot read engine profiles from {str(path)!r}: {exc}") from None


class EngineStack:
    """Named engines for a set of applications, with one placement and their profiles.

    ``factory(name, kind, budget, profile)`` builds each engine: ``embedded_factory()``
    the real embedded engines, ``fake_factory()`` the model-free fakes, or a function of
    your own that returns your engine for some names (docs/guide/extending.md).

    Examples:
        >>> from primflow import EngineStack, get_app
        >>> from primflow.session import fake_factory
        >>> stack = EngineStack.for_apps(["naive_rag"], fake_factory())
        >>> sorted(stack.engines), stack.profiles["embedder"].per_item_s
        (['embedder', 'llm', 'vector_index'], 0.012)
        >>> sorted(EngineStack.for_apps(["search_augmented"], fake_factory()).engines)
        ['judge', 'llm', 'web_search']
    """

    def __init__(
        self,
        engine_kinds: Mapping[str, EngineKind],
        factory: EngineFactory,
        *,
        placement: Placement | str = Placement.SHARED,
        profiles: Mapping[str, LatencyProfile] | None = None,
        num_cores: int | None = None,
    ) -> None:
        if not engine_kinds:
            raise StackError("an engine stack needs at least one engine")
        self.placement = Placement(placement)
        self.budget = make_budget(self.placement, engine_kinds, num_cores)
        known = dict(profiles or {})
        # Every instance of each engine; ``engines`` holds the first one of each, for the
        # callers that talk to one instance (collections, baselines, metrics).
        self.instances: dict[str, list[Engine]] = {}
        for name, kind in engine_kinds.items():
            profile = known.get(name) or known.get(str(kind))
            self.instances[name] = _instances(name, factory(name, kind, self.budget, profile))
        self.engines: dict[str, Engine] = {n: found[0] for n, found in self.instances.items()}
        self._is_started = False
        # Engines keep per-query state by id (an LLM engine refuses an id it aborted), so
        # ids are unique per stack, whichever of its sessions asks.
        self._query_numbers = itertools.count()

    def new_query_id(self, app: str) -> str:
        return f"{app}-{next(self._query_numbers)}"

    @classmethod
    def for_apps(
        cls,
        apps: Iterable[App | str],
        factory: EngineFactory,
        *,
        placement: Placement | str = Placement.SHARED,
        profiles: Mapping[str, LatencyProfile] | None = None,
        num_cores: int | None = None,
        custom_engines: Mapping[str, EngineKind] | None = None,
    ) -> EngineStack:
        """The engines the ``apps`` use (names of built-in apps, or :class:`App` s);
        ``custom_engines`` declares engine names of your own and their kinds, which
        ``factory`` must build (docs/guide/extending.md)."""
        return cls(
            engines_for_apps(apps, custom_engines),
            factory,
            placement=placement,
            profiles=profiles,
            num_cores=num_cores,
        )

    @property
    def profiles(self) -> dict[str, LatencyProfile]:
        return {name: engine.profile for name, engine in self.engines.items()}

    async def start(self) -> None:
        """Load every model (concurrently: each engine loads on its own thread)."""
        if self._is_started:
            return
        started_s = time.perf_counter()
        await asyncio.gather(*(engine.start() for engine in self._all_instances()))
        self._is_started = True
        _log.info(
            "started %d engine(s) (%s) in %.1f s",
            len(self.engines),
            ", ".join(self.engines),
            time.perf_counter() - started_s,
        )

    async def close(self) -> None:
        for engine in self._all_instances():
            await engine.close()
        self._is_started = False

    def _all_instances(self) -> list[Engine]:
        return [engine for found in self.instances.values() for engine in found]

    async def __aenter__(self) -> EngineStack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def borrowed(self) -> dict[str, Engine | list[Engine]]:
        """Views of the engines whose start/close do nothing (the stack owns them): an
        engine, or the list of its instances when it has several."""
        views: dict[str, Engine | list[Engine]] = {}
        for name, found in self.instances.items():
            borrowed: list[Engine] = [BorrowedEngine(engine) for engine in found]
            views[name] = borrowed[0] if len(borrowed) == 1 else borrowed
        return views


def _instances(name: str, built: Engine | Sequence[Engine]) -> list[Engine]:
    found = [built] if isinstance(built, Engine) else list(built)
    if not found:
        raise StackError(f"the factory built no instance of engine {name!r}")
    if len({engine.kind for engine in found}) > 1:
        raise StackError(f"the instances of engine {name!r} are of different kinds")
    return found


class BorrowedEngine(Engine):
    """Forwards the engine contract to an engine owned elsewhere; never closes it."""

    def __init__(self, inner: Engine) -> None:
        self.kind = inner.kind
        super().__init__(inner.name, inner.profile)
        self.inner = inner

    @property
    def max_batch_size(self) -> int:
        return self.inner.max_batch_size

    @property
    def max_concurrent_batches(self) -> int:
        return self.inner.max_concurrent_batches

    async def start(self) -> None:
        await self.inner.start()  # idempotent: loads the model once

    async def close(self) -> None:
        """The owner closes the engine, not a borrower."""

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        return self.inner.submit(batch)

    def abort(self, query_id: str) -> None:
        self.inner.abort(query_id)

    def release(self, query_id: str) -> None:
        self.inner.release(query_id)

    def health(self) -> EngineHealth:
        return self.inner.health()
