"""The process's llama thread without a model (runs in the unit tier too): engines take
turns one step at a time on one OS thread, a crashing engine stops alone, and engines
sharing the thread count as one engine for the core budget."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

from primflow.engines.llm import commands as cmd
from primflow.engines.llm.thread import LlamaThread
from primflow.engines.placement import CoreBudget


class FakeCore:
    """The EngineCore surface the thread drives: ``num_steps`` steps of work per Start."""

    def __init__(self, name: str, log: list[tuple[str, int]], num_steps: int, **kw: Any) -> None:
        self.name = name
        self.budget: CoreBudget | None = kw.get("budget")
        self.budget_name = name
        self.log = log
        self.num_left = num_steps
        self.fail_at: int | None = kw.get("fail_at")
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.crashed: Exception | None = None
        self.refused: list[cmd.Command] = []
        self.busy_seen: list[list[str]] = []
        self.num_speculative: int = kw.get("num_speculative", 0)  # the last steps' work

    def load(self, budget_name: str) -> bool:
        self.budget_name = budget_name
        self.ready.set_result(None)
        return True

    def oldest_query_start_s(self) -> float | None:
        return None

    def is_speculative(self) -> bool:
        return 0 < self.num_left <= self.num_speculative

    def has_work(self) -> bool:
        return self.num_left > 0

    def step(self) -> bool:
        self.log.append((self.name, threading.get_ident()))
        if self.budget is not None:
            self.busy_seen.append(self.budget.busy_engines())
        self.num_left -= 1
        if self.fail_at is not None and self.num_left == self.fail_at:
            raise RuntimeError("boom")
        if self.num_left == 0:
            self.stopped.set_result(None)  # lets the test wait for the last step
        return True

    def handle(self, command: cmd.Command) -> None:
        pass

    def publish(self) -> None:
        pass

    def refuse(self, command: cmd.Command) -> None:
        self.refused.append(command)
        if isinstance(command, cmd.Probe):
            command.future.set_exception(RuntimeError("the engine is closed"))

    def shutdown(self) -> None:
        if not self.stopped.done():
            self.stopped.set_result(None)

    def crash(self, error: Exception) -> None:
        self.crashed = error
        if not self.stopped.done():
            self.stopped.set_result(None)


def start_both(thread: LlamaThread, *cores: FakeCore) -> None:
    # Both Starts are posted before the thread runs a step: they are drained together.
    for core in cores:
        thread.post(core, cmd.Start())  # type: ignore[arg-type]
    for core in cores:
        core.stopped.result(timeout=30)


def test_engines_take_turns_one_step_each_on_one_thread():
    log: list[tuple[str, int]] = []
    thread = LlamaThread("test")
    a, b = FakeCore("a", log, num_steps=3), FakeCore("b", log, num_steps=3)
    start_both(thread, a, b)
    assert [name for name, _ in log] == ["a", "b", "a", "b", "a", "b"]
    assert len({ident for _, ident in log}) == 1 and log[0][1] != threading.get_ident()


def test_a_crashing_engine_stops_alone():
    log: list[tuple[str, int]] = []
    thread = LlamaThread("test")
    bad, good = FakeCore("bad", log, num_steps=5, fail_at=3), FakeCore("good", log, num_steps=4)
    start_both(thread, bad, good)
    assert isinstance(bad.crashed, RuntimeError)
    assert [name for name, _ in log].count("bad") == 2 and good.num_left == 0
    probe = cmd.Probe(lambda _: None, concurrent.futures.Future())
    thread.post(bad, probe)  # type: ignore[arg-type]
    assert isinstance(probe.future.exception(timeout=30), RuntimeError)
    assert bad.refused == [probe]  # a stopped engine refuses further work


def test_engines_on_one_thread_are_one_engine_for_the_core_budget():
    budget = CoreBudget(num_cores=2)
    log: list[tuple[str, int]] = []
    thread = LlamaThread("test")
    llm = FakeCore("llm", log, num_steps=2, budget=budget)
    judge = FakeCore("judge", log, num_steps=2, budget=budget)
    start_both(thread, llm, judge)
    assert judge.budget_name == "llm"  # both ask for the first engine's share
    assert all(seen == ["llm"] for seen in llm.busy_seen + judge.busy_seen)
    for core in (llm, judge):
        thread.post(core, cmd.Stop())  # type: ignore[arg-type]
    probe: concurrent.futures.Future[None] = concurrent.futures.Future()
    thread.post(llm, cmd.Probe(lambda _: None, probe))  # type: ignore[arg-type]
    probe.exception(timeout=30)  # handled after both Stops: the budget is released by then
    assert budget.busy_engines() == []


def test_speculative_engine_steps_only_when_real_work_cannot_progress():
    # "answer" holds only an open prompt (speculative) while "judge" has real work: on one
    # thread the open prompt's steps would only delay the judge, so they wait for it.
    log: list[tuple[str, int]] = []
    thread = LlamaThread("test")
    answer = FakeCore("answer", log, num_steps=2, num_speculative=2)
    judge = FakeCore("judge", log, num_steps=3)
    start_both(thread, answer, judge)
    assert [name for name, _ in log] == ["judge", "judge", "judge", "answer", "answer"]


def test_real_work_of_two_engines_still_takes_turns_before_speculation():
    log: list[tuple[str, int]] = []
    thread = LlamaThread("test")
    # a: 1 speculative step after 2 real ones; b: 2 real steps
    a = FakeCore("a", log, num_steps=3, num_speculative=1)
    b = FakeCore("b", log, num_steps=2)
    start_both(thread, a, b)
    assert [name for name, _ in log] == ["a", "b", "a", "b", "a"]
