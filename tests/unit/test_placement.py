"""CoreBudget: thread counts from which engines are busy (shared) or fixed shares."""

import threading

import pytest

from primflow.engines.placement import CoreBudget, Placement, dedicated_budget


def test_engine_alone_gets_every_core() -> None:
    budget = CoreBudget(num_cores=2)
    assert budget.threads_for("embedder") == 2
    budget.begin("embedder")
    assert budget.threads_for("embedder") == 2


def test_llm_and_embedder_both_busy_get_one_thread_each() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("llm")
    budget.begin("embedder")
    assert budget.threads_for("llm") == 1
    assert budget.threads_for("embedder") == 1


def test_asking_engine_counts_as_a_contender_even_before_begin() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("llm")
    # The embedder is about to start a batch: it must not take both cores.
    assert budget.threads_for("embedder") == 1
    # The LLM alone (the embedder has not begun) keeps both.
    assert budget.threads_for("llm") == 2


def test_cores_return_when_the_other_engine_ends() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("llm")
    budget.begin("embedder")
    budget.end("embedder")
    assert budget.threads_for("llm") == 2
    assert budget.busy_engines() == ["llm"]


def test_begin_nests_and_end_without_begin_is_an_error() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("embedder")
    budget.begin("embedder")
    budget.end("embedder")
    assert budget.busy_engines() == ["embedder"]
    budget.end("embedder")
    assert budget.busy_engines() == []
    with pytest.raises(RuntimeError, match="without a matching begin"):
        budget.end("embedder")


def test_spare_cores_go_to_engines_by_priority() -> None:
    budget = CoreBudget(num_cores=5, priority=("llm", "embedder"))
    for name in ("reranker", "embedder", "llm"):
        budget.begin(name)
    threads = {name: budget.threads_for(name) for name in ("llm", "embedder", "reranker")}
    assert threads == {"llm": 2, "embedder": 2, "reranker": 1}
    assert sum(threads.values()) == 5


def test_more_busy_engines_than_cores_still_get_one_thread() -> None:
    budget = CoreBudget(num_cores=2)
    for name in ("llm", "embedder", "reranker"):
        budget.begin(name)
    assert [budget.threads_for(n) for n in ("llm", "embedder", "reranker")] == [1, 1, 1]


def test_working_context_ends_even_on_error() -> None:
    budget = CoreBudget(num_cores=2)
    with pytest.raises(ValueError), budget.working("embedder"):
        assert budget.busy_engines() == ["embedder"]
        raise ValueError("boom")
    assert budget.busy_engines() == []


def test_dedicated_shares_ignore_who_is_busy() -> None:
    budget = dedicated_budget(2, {"llm": 1, "embedder": 1})
    assert budget.placement is Placement.DEDICATED
    assert budget.threads_for("llm") == 1
    budget.begin("embedder")
    assert budget.threads_for("embedder") == 1
    assert budget.threads_for("llm") == 1


def test_dedicated_unlisted_engine_gets_the_cores_left() -> None:
    assert dedicated_budget(4, {"llm": 3}).threads_for("embedder") == 1
    assert dedicated_budget(4, {"llm": 2}).threads_for("embedder") == 2
    assert dedicated_budget(2, {"llm": 2}).threads_for("embedder") == 1


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="num_cores"):
        CoreBudget(num_cores=0)
    with pytest.raises(ValueError, match="share of 'llm'"):
        dedicated_budget(2, {"llm": 0})


def test_threads_never_exceed_cores_under_concurrent_begin_end() -> None:
    budget = CoreBudget(num_cores=2)
    violations: list[int] = []

    def churn(name: str) -> None:
        for _ in range(2000):
            with budget.working(name):
                n = budget.threads_for(name)
                if not 1 <= n <= 2:
                    violations.append(n)

    threads = [threading.Thread(target=churn, args=(n,)) for n in ("llm", "embedder")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert violations == []
    assert budget.busy_engines() == []


def test_speculative_deferrable_engine_waits_and_gives_up_its_cores() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("llm")
    budget.begin("embedder")
    budget.set_speculative("llm", True)  # partial prefills only: off the critical path
    assert budget.should_defer("llm")
    assert budget.threads_for("embedder") == 2
    assert not budget.should_defer("embedder")  # real work never waits
    budget.set_speculative("llm", False)  # a full prefill arrived: real work again
    assert not budget.should_defer("llm")
    assert budget.threads_for("embedder") == 1


def test_a_stepping_engine_stays_a_contender() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("llm")
    budget.begin("embedder")
    budget.set_speculative("llm", True)
    assert budget.should_defer("llm")
    with budget.lease("llm") as num_threads:  # a deferrable engine stepping anyway
        assert num_threads == 1 and budget.threads_for("llm") == 1
        assert budget.threads_for("embedder") == 1
        assert not budget.should_defer("llm")
    assert budget.threads_for("embedder") == 2


def test_no_deferral_when_alone_next_to_light_or_speculative_engines_or_dedicated() -> None:
    now_s = [0.0]
    budget = CoreBudget(
        num_cores=2, light_engines=["vector_index"], linger_s=0.005, clock=lambda: now_s[0]
    )
    budget.begin("llm")
    budget.begin("embedder")
    assert not budget.should_defer("llm")  # not speculative: plain split
    assert budget.threads_for("embedder") == 1
    budget.set_speculative("llm", True)
    budget.end("embedder")
    # Just idle: its next batch usually follows at once, so speculation lingers too.
    now_s[0] = 0.004
    assert budget.should_defer("llm")
    now_s[0] = 0.006  # idle for longer than linger_s: nothing to wait for
    assert not budget.should_defer("llm")
    budget.begin("vector_index")  # milliseconds of work: not worth waiting for
    assert not budget.should_defer("llm")
    budget.begin("judge")
    budget.should_defer("judge")
    budget.set_speculative("judge", True)  # two speculative engines never wait for each other
    assert not budget.should_defer("llm") and not budget.should_defer("judge")
    dedicated = dedicated_budget(2, {"llm": 1, "embedder": 1})
    dedicated.begin("llm")
    dedicated.begin("embedder")
    dedicated.set_speculative("llm", True)
    assert not dedicated.should_defer("llm")


def test_an_engine_that_never_asks_is_never_treated_as_waiting() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("reranker")
    budget.begin("embedder")
    budget.set_speculative("reranker", True)
    # The reranker is not deferrable (never called should_defer): it still holds a core.
    assert budget.threads_for("embedder") == 1


def test_light_engines_take_one_thread_and_never_split_the_cores() -> None:
    budget = CoreBudget(num_cores=2, light_engines=["vector_index"])
    budget.begin("embedder")
    budget.begin("vector_index")
    assert budget.threads_for("embedder") == 2  # a millisecond search does not halve it
    assert budget.threads_for("vector_index") == 1
    budget.begin("llm")
    assert budget.threads_for("embedder") == 1 and budget.threads_for("llm") == 1


def _lease_in_background(budget: CoreBudget, engine: str) -> tuple[threading.Thread, list[int]]:
    """A thread taking a lease for ``engine`` (its grant lands in the list), given
    50 ms to get it; the caller checks whether it is still waiting."""
    granted: list[int] = []
    started = threading.Event()

    def take() -> None:
        started.set()
        with budget.lease(engine) as num_threads:
            granted.append(num_threads)

    worker = threading.Thread(target=take)
    worker.start()
    started.wait()
    worker.join(timeout=0.05)
    return worker, granted


def test_a_lease_waits_for_free_cores_instead_of_oversubscribing() -> None:
    budget = CoreBudget(num_cores=2)
    budget.begin("llm")
    with budget.lease("llm") as num_threads:  # alone: every core
        assert num_threads == 2
        budget.begin("embedder")
        worker, granted = _lease_in_background(budget, "embedder")
        assert worker.is_alive() and granted == []  # every core is leased: it waits
    worker.join(timeout=5)
    assert granted == [1]  # the llm is still busy: the cores are split
    with budget.lease("llm") as num_threads:
        assert num_threads == 1


def test_leases_never_hold_more_threads_than_cores() -> None:
    budget = CoreBudget(num_cores=2)
    names = ["llm", "embedder", "reranker"]
    for name in names:
        budget.begin(name)
    held: list[int] = []
    violations: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        for _ in range(200):
            with budget.lease(name) as n:
                with lock:
                    held.append(n)
                    if sum(held) > 2:
                        violations.append(sum(held))
                with lock:
                    held.remove(n)

    threads = [threading.Thread(target=work, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert violations == []


def test_dedicated_and_light_leases_never_wait() -> None:
    dedicated = dedicated_budget(2, {"llm": 1, "embedder": 1, "reranker": 1})
    with (
        dedicated.lease("llm") as a,
        dedicated.lease("embedder") as b,
        dedicated.lease("reranker") as c,
    ):
        assert (a, b, c) == (1, 1, 1)
    shared = CoreBudget(num_cores=2, light_engines=["vector_index"])
    with shared.lease("llm") as a, shared.lease("vector_index") as b:
        assert (a, b) == (2, 1)
    with (
        pytest.raises(RuntimeError, match="holds a lease"),
        shared.lease("llm"),
        shared.lease("llm"),
    ):
        pass


# -- oldest query first ------------------------------------------------------------------


def test_older_querys_engine_gets_every_core_and_the_younger_one_waits() -> None:
    budget = CoreBudget(num_cores=2)
    for name in ("llm", "embedder"):
        budget.begin(name)
    budget.set_query_start("llm", 10.0)  # the LLM serves the older query
    budget.set_query_start("embedder", 12.0)
    assert budget.threads_for("llm") == 2  # the embedder yields: no contender
    assert budget.should_defer("embedder") and not budget.should_defer("llm")
    worker, granted = _lease_in_background(budget, "embedder")
    assert worker.is_alive() and granted == []  # free cores, but it yields
    budget.set_query_start("llm", None)  # the older query's LLM work is done
    worker.join(timeout=5)
    assert granted == [1]  # the llm is still busy (now younger work): cores split


def test_an_engine_that_ends_releases_the_engines_yielding_to_it() -> None:
    budget = CoreBudget(num_cores=2)
    for name in ("llm", "embedder"):
        budget.begin(name)
    budget.set_query_start("embedder", 1.0)
    budget.set_query_start("llm", 2.0)
    assert budget.should_defer("llm")
    budget.end("embedder")  # an engine that is not busy holds nobody back
    assert not budget.should_defer("llm") and budget.threads_for("llm") == 2


def test_unknown_ages_light_speculative_and_dedicated_engines_never_make_others_yield() -> None:
    budget = CoreBudget(num_cores=2, light_engines=["vector_index"])
    for name in ("llm", "embedder", "vector_index"):
        budget.begin(name)
    budget.set_query_start("vector_index", 0.0)  # light: not a contender
    budget.set_query_start("embedder", 5.0)
    assert not budget.should_defer("embedder")
    budget.set_query_start("llm", None)  # a client that does not say (the baselines)
    assert budget.threads_for("embedder") == 1 and budget.threads_for("llm") == 1
    budget.set_query_start("llm", 1.0)
    budget.set_speculative("llm", True)  # speculative work waits itself
    assert budget.should_defer("llm") and not budget.should_defer("embedder")
    dedicated = dedicated_budget(2, {"llm": 1, "embedder": 1})
    for name in ("llm", "embedder"):
        dedicated.begin(name)
    dedicated.set_query_start("llm", 1.0)
    dedicated.set_query_start("embedder", 5.0)
    assert not dedicated.should_defer("embedder") and dedicated.threads_for("embedder") == 1
