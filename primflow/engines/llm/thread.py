"""The process's one llama.cpp thread: every LlamaEngine's steps run on it, taking turns.

Why one: with OpenMP builds, once a second OS thread has called llama.cpp while the
first is alive, every call slows down (measured on this engine: two engines in one
process, each with its own thread, decode at 0.60x; docs/results/llm-engine.md). So all engines
of a process submit their work to ONE thread; each keeps its own model, context and
scheduler (an ``EngineCore``). Invariants:

- Only this thread calls llama.cpp (load, warm-up, steps, KV edits, tokenizing).
- Engines take turns one step at a time, so two busy engines share the thread fairly;
  commands (new phases, aborts) are handled between steps, in the order posted.
- An engine whose work is all speculative (open prompts) steps only in a round where
  no engine with real work made progress: on one thread its steps would only delay
  that work. Measured (search_augmented, shared placement):
  the answer's partial prefill stepping beside the judge's prefill made the judge take
  0.30 s instead of 0.15 s on the critical path.
- A failing engine (an unexpected error in its step) is stopped alone; the others keep
  serving. The thread lives as long as the process (a daemon, idle when nobody has
  work), so no second OS thread ever calls llama.cpp.
- Core budget: engines on one thread never run at the same time, so for the budget they
  are one engine: the thread marks the group busy under its first engine's name and
  every engine of the group asks for that name's thread count. The group is speculative
  when every engine of it with work has only open prompts, and it is deferrable: then,
  while another busy engine does real work (shared placement), its engines do not step
  (the thread polls every ``DEFER_POLL_S``), and each step runs inside a ``budget.lease``.
  The group's query start (``set_query_start``) is the oldest query of its engines' real
  work; a round in which nothing could step clears it.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from primflow.engines.llm import commands as cmd

if TYPE_CHECKING:
    from primflow.engines.llm.core import EngineCore
    from primflow.engines.placement import CoreBudget

_shared: LlamaThread | None = None
_shared_lock = threading.Lock()
_thread_ids = itertools.count()

# How often a deferred engine looks again whether it may step (the budget has no wake-up).
DEFER_POLL_S = 0.002


def shared_thread() -> LlamaThread:
    """The process-wide llama thread (started on first use)."""
    global _shared
    with _shared_lock:
        # A forked child inherits the object but not the thread: it needs its own.
        if _shared is None or _shared.pid != os.getpid():
            _shared = LlamaThread("llama")
        return _shared


@dataclass(slots=True)
class _BudgetGroup:
    budget: CoreBudget
    cores: list[EngineCore] = field(default_factory=list)


class LlamaThread:
    def __init__(self, name: str) -> None:
        self.name = f"{name}-{next(_thread_ids)}"
        self.pid = os.getpid()
        self._inbox: queue.SimpleQueue[tuple[EngineCore, cmd.Command]] = queue.SimpleQueue()
        self._cores: list[EngineCore] = []  # loaded and serving, in start order
        # id(budget) -> (budget, the name its group of engines is marked busy under)
        self._busy_as: dict[int, tuple[CoreBudget, str]] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def post(self, core: EngineCore, command: cmd.Command) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._inbox.put((core, command))

    def is_alive(self) -> bool:
        return self._thread is None or self._thread.is_alive()

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            has_work = any(core.has_work() for core in self._cores)
            self._sync_budgets()
            self._drain(block=not has_work)
            self._sync_budgets()  # new work changes busy state and speculation before stepping
            has_progressed = is_deferred = False
            # Real work first; speculative engines step only in a round it made no progress.
            for core in sorted(self._cores, key=lambda c: c.is_speculative()):
                if not core.has_work() or (has_progressed and core.is_speculative()):
                    continue
                if core.budget is not None and core.budget.should_defer(core.budget_name):
                    is_deferred = True
                    continue
                has_progressed |= self._stepped(core)
            if is_deferred and not has_progressed:
                self._drain(block=True, timeout_s=DEFER_POLL_S)
            elif not has_progressed and any(core.has_work() for core in self._cores):
                self._clear_query_starts()  # nobody should yield to work that cannot run
                self._drain(block=True)  # runnable but stuck (no cells): wait for news

    def _stepped(self, core: EngineCore) -> bool:
        if core.budget is None:
            return self._guarded(core, core.step)
        with core.budget.lease(core.budget_name):  # the step's threads, held to its end
            return self._guarded(core, core.step)

    def _drain(self, block: bool, timeout_s: float | None = None) -> None:
        try:
            core, command = self._inbox.get(block=block, timeout=timeout_s)
        except queue.Empty:
            return
        touched: list[EngineCore] = []
        while True:
            self._handle(core, command)
            if core not in touched:
                touched.append(core)
            try:
                core, command = self._inbox.get_nowait()
            except queue.Empty:
                break
        for core in touched:
            if core in self._cores:
                core.publish()

    def _handle(self, core: EngineCore, command: cmd.Command) -> None:
        if isinstance(command, cmd.Start):
            self._sync_budgets()  # the budget share applies from the warm-up on
            if core.load(self._budget_name(core)):
                self._cores.append(core)
        elif isinstance(command, cmd.Stop):
            if core in self._cores:
                self._cores.remove(core)
            core.shutdown()
            self._sync_budgets()
        elif core in self._cores:
            self._guarded(core, lambda: core.handle(command))
        else:
            core.refuse(command)

    def _guarded(self, core: EngineCore, action: Callable[[], object]) -> bool:
        """Run ``action``; an unexpected error stops that engine alone."""
        try:
            return bool(action())
        except Exception as err:  # a bug in one engine must not kill the others
            self._cores.remove(core)
            core.crash(err)
            self._sync_budgets()
            return False

    # -- core budget --------------------------------------------------------------------

    def _groups(self) -> dict[int, _BudgetGroup]:
        groups: dict[int, _BudgetGroup] = {}
        for core in self._cores:
            if core.budget is not None:
                groups.setdefault(id(core.budget), _BudgetGroup(core.budget)).cores.append(core)
        return groups

    def _budget_name(self, core: EngineCore) -> str:
        for other in self._cores:
            if other.budget is not None and other.budget is core.budget:
                return other.name
        return core.name

    def _sync_budgets(self) -> None:
        groups = self._groups()
        for key in [k for k in self._busy_as if k not in groups]:
            self._release_budget(key)
        for key, group in groups.items():
            lead = group.cores[0].name
            for core in group.cores:
                core.budget_name = lead
            is_busy = any(core.has_work() for core in group.cores)
            working = [core for core in group.cores if core.has_work()]
            is_speculative = bool(working) and all(core.is_speculative() for core in working)
            group.budget.set_speculative(lead, is_speculative)
            starts = [s for core in working if (s := core.oldest_query_start_s()) is not None]
            group.budget.set_query_start(lead, min(starts, default=None))
            busy_as = self._busy_as.get(key)
            if busy_as is not None and (not is_busy or busy_as[1] != lead):
                self._release_budget(key)
            if is_busy and key not in self._busy_as:
                group.budget.begin(lead)
                self._busy_as[key] = (group.budget, lead)

    def _clear_query_starts(self) -> None:
        for group in self._groups().values():
            group.budget.set_query_start(group.cores[0].name, None)

    def _release_budget(self, key: int) -> None:
        budget, name = self._busy_as.pop(key)
        budget.end(name)
