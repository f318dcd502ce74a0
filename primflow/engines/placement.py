"""Core placement: how many threads each engine may use right now.

Engines that share a few cores slow each other down badly when both run with all the
cores (measured on the 2-core reference machine: LLM 2 threads + embedder 2 threads on 2 cores was
worse for both than taking turns). This module owns the rule that prevents it.

- ``SHARED`` (default): the cores are split among the engines that currently have work.
  An engine alone gets every core; two busy engines on 2 cores get 1 thread each
  (measured: each then runs at its 1-thread speed with no stalls).
- ``DEDICATED``: each engine owns a fixed share of the cores whether or not the others
  are busy, as if each were its own accelerator. For benchmarks.

Leases (``SHARED``): engines call ``begin``/``end`` around work they hold and run each
batch, sub-batch or step inside ``lease``, which grants a thread count and holds it
until the unit ends (thread counts change between units, never within one). A lease is
granted only from cores no other lease holds, so leased threads never add up to more
than ``num_cores``: an engine that finds every core leased waits for a unit to end
instead of oversubscribing. Measured why: a 64-token LLM step that started on 2 threads
while the embedder was idle took 0.75 s instead of ~0.05 s once the embedder started a
sub-batch beside it (3 spinning threads on 2 cores), and that sub-batch crawled too.
Units are short (an ONNX sub-batch, one llama step), so the wait is bounded by one.
``threads_for`` (the share, always in ``[1, num_cores]``) is what a lease would grant
with every core free. Light engines and ``DEDICATED`` placement lease without waiting.

Light engines (``SHARED`` only): engines whose batches take milliseconds (FAISS over a
query's chunks, BM25 over a small corpus) run on one thread and are no contenders.
Counting them let a 1 ms ingest that coincided with the start of an embedder sub-batch
halve that sub-batch (seen: 0.26 s at 1 thread instead of ~0.15 s at 2); the price is a
millisecond of one extra runnable thread.

Speculative deferral (``SHARED`` only): an engine whose only work is speculative (the
LLM's partial prefills: open prompts whose rest waits on other engines, so off the
critical path) says so (``set_speculative``), and one that asks ``should_defer`` before
each unit of work waits while any other busy engine that is not
light and not speculative itself runs. While it waits it is no contender: the working
engine gets every core. On 2 cores where every engine scales with threads, overlapping
speculative work with real work only slows the real work down (measured: document
embedding 0.88 s instead of 0.48 s next to the LLM's partial prefills), so speculation
uses idle cores only. A deferrable engine holding a lease always counts as a contender;
engines never wait for each other's speculative work, so there is no deadlock (two
speculative engines both run). An engine that went idle less than ``linger_s`` ago
still counts as working for this rule: its next batch usually follows at once (the
dataflow submits the next primitive when the last one's result lands), and a
speculative LLM step that slipped into that gap made the next batch wait for it
(measured: a 5 ms question embedding took 0.11-0.12 s in 4 of 10 naive_rag queries).

Oldest query first (``SHARED`` only): engines say when the oldest query of the real
work they hold was submitted (``set_query_start``; None when their clients do not say,
as the baselines' do not). An engine whose oldest query is younger than another busy,
non-light engine's yields to it: it waits before its next unit (``should_defer`` for the
LLM, ``lease`` for the others) and is no contender meanwhile, so the older query's work
gets every core. Why: under load the LLM already serves the oldest query first, and a
younger query's document embedding beside it ran both at 1 thread; the young query
gained nothing (its LLM work waits for the old query's anyway) while the old query's
decode slowed 1.6x and its prefill 2x. The oldest engine never yields, so there is no
cycle; an engine whose real work cannot progress clears its query start.

Waits are recorded (``core_waits``): every interval an engine spent waiting for cores,
in a lease or deferring its next step, on the budget's clock (the loop's monotonic
clock by default), the last ``MAX_NUM_CORE_WAITS`` of them. ``primflow explain`` reads
them to split a primitive's service time into running and waiting for cores.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

# Core waits kept for explain (a few per batch or step; old ones are dropped).
MAX_NUM_CORE_WAITS = 4096


class Placement(StrEnum):
    SHARED = "shared"
    DEDICATED = "dedicated"


@dataclass(frozen=True, slots=True)
class CoreWait:
    """``engine`` waited for cores from ``start_s`` to ``end_s`` (budget clock seconds)."""

    engine: str
    start_s: float
    end_s: float


class CoreBudget:
    """Thread counts per engine from which engines are busy (shared) or fixed shares.

    ``priority`` orders engines when the cores do not divide evenly: earlier engines get
    the spare cores. Engine names not listed come after, in name order.
    """

    def __init__(
        self,
        num_cores: int | None = None,
        placement: Placement = Placement.SHARED,
        priority: Sequence[str] = ("llm", "embedder", "reranker"),
        dedicated_shares: Mapping[str, int] | None = None,
        light_engines: Collection[str] = (),
        linger_s: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.num_cores = num_cores if num_cores is not None else (os.cpu_count() or 1)
        if self.num_cores < 1:
            raise ValueError(f"num_cores must be >= 1, got {self.num_cores}")
        self.placement = placement
        self.priority = tuple(priority)
        self.dedicated_shares = dict(dedicated_shares or {})
        self.light_engines = frozenset(light_engines)
        for name, share in self.dedicated_shares.items():
            if share < 1:
                raise ValueError(f"dedicated share of {name!r} must be >= 1, got {share}")
        self._num_active: dict[str, int] = {}
        self._speculative: set[str] = set()
        self._deferrable: set[str] = set()
        self._leased: dict[str, int] = {}  # engine -> threads its current lease holds
        self._query_start_s: dict[str, float] = {}  # engine -> its oldest query's start
        self.linger_s = linger_s
        self._clock = clock
        self._idle_since_s: dict[str, float] = {}  # engine -> when it last went idle
        self._waits: deque[CoreWait] = deque(maxlen=MAX_NUM_CORE_WAITS)
        self._deferred_since_s: dict[str, float] = {}  # engine -> when it began deferring
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)

    def counts(self, engine: str) -> bool:
        """Whether ``engine``'s ``begin``/``end`` and query starts can change what another
        engine gets: only under ``SHARED`` placement and for an engine that is not light
        (every rule above leaves light engines out, and ``DEDICATED`` shares are fixed)."""
        return self.placement is Placement.SHARED and engine not in self.light_engines

    def begin(self, engine: str) -> None:
        """``engine`` has work (queued or running). Calls nest; each needs an ``end``."""
        with self._lock:
            self._num_active[engine] = self._num_active.get(engine, 0) + 1

    def end(self, engine: str) -> None:
        with self._lock:
            count = self._num_active.get(engine, 0)
            if count <= 0:
                raise RuntimeError(f"CoreBudget.end({engine!r}) without a matching begin")
            if count == 1:
                del self._num_active[engine]
                self._idle_since_s[engine] = self._clock()
                self._released.notify_all()  # engines yielding to it may go on
            else:
                self._num_active[engine] = count - 1

    @contextmanager
    def working(self, engine: str) -> Iterator[None]:
        self.begin(engine)
        try:
            yield
        finally:
            self.end(engine)

    def set_speculative(self, engine: str, is_speculative: bool) -> None:
        """Whether all the work ``engine`` holds now is speculative (see the module doc)."""
        with self._released:
            if is_speculative == (engine in self._speculative):
                return
            if is_speculative:
                self._speculative.add(engine)
            else:
                self._speculative.discard(engine)
            self._released.notify_all()  # engines yielding to it may go on

    def set_query_start(self, engine: str, start_s: float | None) -> None:
        """When the oldest query of the real work ``engine`` holds was submitted (None:
        no such work, or its clients do not say); see "Oldest query first" above."""
        with self._released:
            if self._query_start_s.get(engine) == start_s:
                return  # the LLM thread reports every round: wake waiters on changes only
            if start_s is None:
                self._query_start_s.pop(engine, None)
            else:
                self._query_start_s[engine] = start_s
            self._released.notify_all()

    def should_defer(self, engine: str) -> bool:
        """True when ``engine`` should wait before its next step (see the module doc).

        Calling it makes ``engine`` deferrable: from now on, while it is not inside
        :meth:`step` and should defer, it is no contender for the cores.
        """
        if self.placement is Placement.DEDICATED:
            return False
        with self._lock:
            self._deferrable.add(engine)
            defers = self._defers(engine)
            since_s = self._deferred_since_s.get(engine)
            if defers and since_s is None:
                self._deferred_since_s[engine] = self._clock()
            elif not defers and since_s is not None:
                del self._deferred_since_s[engine]
                self._waits.append(CoreWait(engine, since_s, self._clock()))
            return defers

    def core_waits(self, since_s: float = float("-inf")) -> list[CoreWait]:
        """The recorded waits for cores that ended after ``since_s``, oldest first."""
        with self._lock:
            return [w for w in self._waits if w.end_s > since_s]

    @contextmanager
    def lease(self, engine: str) -> Iterator[int]:
        """Threads for one unit of work (a batch, sub-batch or step), held until it ends;
        waits while other leases hold every core (see the module doc)."""
        if self.placement is Placement.DEDICATED or engine in self.light_engines:
            yield self.threads_for(engine)
            return
        with self._released:
            if engine in self._leased:
                raise RuntimeError(f"CoreBudget.lease({engine!r}) while it holds a lease")
            waited_from_s: float | None = None
            while (num_free := self.num_cores - sum(self._leased.values())) < 1 or self._yields(
                engine
            ):
                if waited_from_s is None:
                    waited_from_s = self._clock()
                self._released.wait()
            if waited_from_s is not None:
                self._waits.append(CoreWait(engine, waited_from_s, self._clock()))
            num_threads = min(self._share(engine), num_free)
            self._leased[engine] = num_threads
        try:
            yield num_threads
        finally:
            with self._released:
                del self._leased[engine]
                self._released.notify_all()

    def _yields(self, engine: str) -> bool:
        """``engine``'s oldest query is younger than another busy engine's (module doc)."""
        start_s = self._query_start_s.get(engine)
        if start_s is None or self.placement is Placement.DEDICATED:
            return False
        return any(
            other_start_s < start_s
            and other != engine
            and other in self._num_active
            and other not in self.light_engines
            and not self._is_waiting_kind(other)
            for other, other_start_s in self._query_start_s.items()
        )

    def _defers(self, engine: str) -> bool:
        if engine in self._deferrable and engine not in self._leased and self._yields(engine):
            return True
        if not self._is_waiting_kind(engine):
            return False
        now_s = self._clock()
        lingering = [o for o, t in self._idle_since_s.items() if now_s - t < self.linger_s]
        return any(
            other != engine and other not in self.light_engines and not self._is_waiting_kind(other)
            for other in [*self._num_active, *lingering]
        )

    def _is_waiting_kind(self, engine: str) -> bool:
        """Deferrable, speculative and between steps: may wait for the others."""
        return (
            engine in self._deferrable
            and engine in self._speculative
            and engine not in self._leased
        )

    def busy_engines(self) -> list[str]:
        with self._lock:
            return self._ordered(self._num_active)

    def threads_for(self, engine: str) -> int:
        """Threads ``engine`` holds in its lease, or its share of the cores if it holds none."""
        if self.placement is Placement.DEDICATED:
            return self._dedicated_threads(engine)
        if engine in self.light_engines:
            return 1
        with self._lock:
            return self._leased.get(engine) or self._share(engine)

    def _share(self, engine: str) -> int:
        waiting = {
            name
            for name in self._num_active
            if name != engine
            and (self._defers(name) or (self._yields(name) and name not in self._leased))
        }
        contenders = (set(self._num_active) - waiting - self.light_engines) | {engine}
        return self._split(self._ordered(contenders))[engine]

    def _dedicated_threads(self, engine: str) -> int:
        if engine in self.dedicated_shares:
            return min(self.dedicated_shares[engine], self.num_cores)
        # Engines without a configured share split the cores the configured ones leave.
        num_left = self.num_cores - sum(self.dedicated_shares.values())
        return max(1, num_left)

    def _split(self, engines: list[str]) -> dict[str, int]:
        base, num_spare = divmod(self.num_cores, len(engines))
        # More busy engines than cores: each still needs one thread to make progress.
        return {name: max(1, base + (1 if i < num_spare else 0)) for i, name in enumerate(engines)}

    def _ordered(self, engines: Mapping[str, int] | set[str]) -> list[str]:
        rank = {name: i for i, name in enumerate(self.priority)}
        return sorted(engines, key=lambda name: (rank.get(name, len(rank)), name))


def dedicated_budget(num_cores: int, shares: Mapping[str, int]) -> CoreBudget:
    """A budget that gives each engine a fixed number of cores (e.g. llm=1, embedder=1)."""
    return CoreBudget(num_cores=num_cores, placement=Placement.DEDICATED, dedicated_shares=shares)
