"""The public runtime: runs e-graphs on named engines with the two-tier scheduler.

``Runtime`` owns one ``EngineWorker`` (engine scheduler + instances) per named engine
and one ``QueryRun`` (graph scheduler) per running query, and routes events between
them: a query's ready engine node goes to its engine's worker; a worker's dispatch
and results go back to the query. Nothing here starts a task: a query is a future
plus callbacks, so cancelling the caller's await cancels the query and everything it
started, and no orphan task can outlive it.

Ending a query:
- normally: every engine the query touched gets ``release`` of its id;
- on deadline, cancel, caller cancellation or failure: its queued requests are dropped
  from the engine schedulers, every engine it touched gets ``abort`` of its id (which
  cancels its running work), and the caller gets QueryTimeout / QueryCancelled /
  QueryFailed. Other queries, even ones sharing a batch with it, go on.

Query ids. A caller may name a query (``query_id=``); the name can be reused once the
query has ended, also after a cancel or failure. Engines remember ended queries to
refuse late work for them, so each run talks to the engines under its own id: the
query id itself the first time, ``<query id>~<n>`` when the id was used before
(``EngineRequest.query_id`` and ``llm_request_id`` carry it; hooks' query events and
errors carry the caller's id). The runtime remembers the last
``MAX_NUM_REMEMBERED_QUERY_IDS`` ids it gave engines, ten times what the engines keep.

Graphs are treated as immutable once submitted: a graph must not change while a query
runs on it. Its ``GraphPlan`` (the static analysis the graph scheduler runs on) is
cached by the identities of its frozen nodes and edges, so N queries of one e-graph,
or of copies of it, analyse it once; a graph changed between runs gets a fresh plan.

A query may grow while it runs (``growth=``, see ``runtime/growth.py``): each grown
graph gets a plan of its own, built uncached (it is unique to the query).

Chained LLM phases reach the engine before their predecessor finished (see
``runtime/plan.py``). Such a request has no ``state`` in its inputs: the engine links
it to the earlier phase by ``llm_request_id`` and resolves its future only when the
phase has really run.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from types import TracebackType
from typing import Any

from primflow.engines.base import Engine, EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile
from primflow.engines.scheduler import Batch, EngineScheduler
from primflow.graph.ir import Graph
from primflow.runtime.clock import Clock, LoopClock, Timer
from primflow.runtime.errors import QueryCancelled, QueryTimeout
from primflow.runtime.graph_scheduler import OnText, QueryRun
from primflow.runtime.growth import Growth
from primflow.runtime.hooks import Hook
from primflow.runtime.planner import GraphPlanner, as_instances, policy_for
from primflow.runtime.query_state import QueryResult, QueryState
from primflow.runtime.worker import EngineWorker

# Ids given to engines that the runtime remembers, to give a reused query id a fresh
# one (engines remember 10,000 ended queries each; see the module docstring).
MAX_NUM_REMEMBERED_QUERY_IDS = 100_000


class Runtime:
    """Runs e-graphs on named engines with the two-tier scheduler (see the module doc).

    ``engines`` maps the engine names the graph's nodes use to an engine, or to several
    instances of one; ``policy`` picks each engine scheduler's batching policy.

    Examples:
        >>> import asyncio
        >>> from primflow import EngineKind, Runtime, get_app, lower_query, optimize
        >>> from primflow.testing.fakes import make_fake_engines
        >>> app = get_app("naive_rag")
        >>> query = app.query("How much leave?", ["Employees get 25 days of paid leave."])
        >>> lowered = lower_query(app.template(), query)
        >>> graph, _report = optimize(lowered.graph)
        >>> kinds = {"llm": EngineKind.LLM, "embedder": EngineKind.EMBEDDER,
        ...          "vector_index": EngineKind.VECTOR_INDEX}
        >>> async def main():
        ...     async with Runtime(make_fake_engines(kinds, latency_scale=0.0)) as runtime:
        ...         return await runtime.run(graph, lowered.inputs)
        >>> result = asyncio.run(main())
        >>> sorted(result.outputs), result.outputs["hits"][0].chunk.text
        (['answer', 'hits'], 'Employees get 25 days of paid leave.')
    """

    def __init__(
        self,
        engines: Mapping[str, Engine | Sequence[Engine]],
        *,
        policy: str | Mapping[str, str] = "critical_path",
        max_wait_ms: float = 2.0,
        hooks: Sequence[Hook] = (),
        profiles: Mapping[str, LatencyProfile] | None = None,
        max_num_cached_plans: int = 256,
    ) -> None:
        """``max_num_cached_plans``: graphs whose plans are kept (0: analyse every query)."""
        if not engines:
            raise ValueError("a runtime needs at least one engine")
        self.instances = {name: as_instances(name, e) for name, e in engines.items()}
        self.profiles = {
            name: (profiles or {}).get(name) or instances[0].profile
            for name, instances in self.instances.items()
        }
        self.policies = {name: policy_for(name, policy) for name in self.instances}
        self.max_wait_ms = max_wait_ms
        self.hooks = tuple(hooks)
        self.workers: dict[str, EngineWorker] = {}
        self._runs: dict[str, QueryRun] = {}  # by the caller's query id
        self._runs_by_engine_id: dict[str, QueryRun] = {}  # by the id engines see
        self._engine_ids: OrderedDict[str, None] = OrderedDict()  # every id engines saw
        self._num_reused_ids = itertools.count()
        self._futures: dict[str, asyncio.Future[QueryResult]] = {}
        self._deadline_timers: dict[str, Timer] = {}
        self._num_open_requests = 0  # queued or running on any engine
        self._query_ids = itertools.count()
        self._clock: Clock | None = None
        self._planner = GraphPlanner(self.instances, self.profiles, max_num_cached_plans)

    # -- lifecycle ----------------------------------------------------------------
    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self, clock: Clock | None = None) -> None:
        self._clock = clock or LoopClock()
        for name, instances in self.instances.items():
            for instance in instances:
                await instance.start()
            self.workers[name] = self._make_worker(name, instances, self._clock)

    async def close(self) -> None:
        for query_id in list(self._runs):
            self.cancel(query_id, reason="cancelled: the runtime closed")
        for worker in self.workers.values():
            worker.close()
        for instances in self.instances.values():
            for instance in instances:
                await instance.close()
        self.workers.clear()

    def _make_worker(self, name: str, instances: list[Engine], clock: Clock) -> EngineWorker:
        scheduler = EngineScheduler(
            name,
            self.profiles[name],
            policy=self.policies[name],
            num_instances=len(instances),
            max_concurrent_batches=instances[0].max_concurrent_batches,
            max_wait_ms=self.max_wait_ms,
            max_num_items=min(self.profiles[name].max_batch_size, instances[0].max_batch_size),
        )
        return EngineWorker(
            name,
            instances,
            scheduler,
            clock,
            on_dispatch=self._on_dispatch,
            on_result=self._on_result,
            is_more_expected=self._is_more_expected,
            hooks=self.hooks,
        )

    # -- queries ------------------------------------------------------------------
    async def run(
        self,
        graph: Graph,
        inputs: Mapping[str, Any],
        *,
        query_id: str | None = None,
        deadline_s: float | None = None,
        on_text: Mapping[str, OnText] | None = None,
        priority: int = 0,
        growth: Growth | None = None,
    ) -> QueryResult:
        """Run one query; ``deadline_s`` is seconds from now. Cancelling the caller
        cancels the query. ``on_text`` maps decode nodes to callbacks that receive
        their text as it streams. ``priority``: a higher one is served first on every
        engine (0 by default). ``growth`` appends rounds to the graph as it runs."""
        return await self.submit(
            graph,
            inputs,
            query_id=query_id,
            deadline_s=deadline_s,
            on_text=on_text,
            priority=priority,
            growth=growth,
        )

    async def run_many(
        self,
        queries: Iterable[tuple[Graph, Mapping[str, Any]]],
        *,
        deadline_s: float | None = None,
    ) -> list[QueryResult | BaseException]:
        """Run queries concurrently; each entry is its result or its error."""
        futures = [self.submit(g, inputs, deadline_s=deadline_s) for g, inputs in queries]
        return await asyncio.gather(*futures, return_exceptions=True)

    def submit(
        self,
        graph: Graph,
        inputs: Mapping[str, Any],
        *,
        query_id: str | None = None,
        deadline_s: float | None = None,
        on_text: Mapping[str, OnText] | None = None,
        priority: int = 0,
        growth: Growth | None = None,
    ) -> asyncio.Future[QueryResult]:
        """Start a query now; the future resolves with its result. Cancelling the future
        cancels the query. A query id may be reused once its query has ended."""
        clock = self._require_started()
        if query_id is None:  # the next generated id no running query has taken
            query_id = next(i for i in map("q{}".format, self._query_ids) if i not in self._runs)
        if query_id in self._runs:
            raise ValueError(f"query id {query_id!r} is already running")
        plan = self._planner.plan(graph, inputs)
        for node in on_text or {}:
            if node not in plan.nodes:
                raise ValueError(f"on_text names node {node!r}, which is not in the graph")
        now_s = clock.now_s()
        deadline_at_s = None if deadline_s is None else now_s + deadline_s
        future: asyncio.Future[QueryResult] = asyncio.get_running_loop().create_future()
        run = QueryRun(
            query_id,
            graph,
            plan,
            inputs,
            clock=clock,
            submit=self._submit_request,
            on_end=self._on_end,
            hooks=self.hooks,
            deadline_at_s=deadline_at_s,
            engine_query_id=self._new_engine_id(query_id),
            on_text=on_text,
            priority=priority,
            growth=growth,
            make_plan=self._planner.grown_plan,
        )
        self._runs[query_id] = run
        self._runs_by_engine_id[run.engine_query_id] = run
        self._futures[query_id] = future
        future.add_done_callback(partial(self._on_future_done, run))
        if deadline_s is not None:
            expire = partial(self._expire, run, deadline_s)
            self._deadline_timers[query_id] = clock.call_at(now_s + deadline_s, expire)
        run.start()
        return future

    def _new_engine_id(self, query_id: str) -> str:
        """The id engines see for this run: never one they saw before (see above)."""
        engine_id = query_id
        while engine_id in self._engine_ids or engine_id in self._runs_by_engine_id:
            engine_id = f"{query_id}~{next(self._num_reused_ids)}"
        self._engine_ids[engine_id] = None
        if len(self._engine_ids) > MAX_NUM_REMEMBERED_QUERY_IDS:
            self._engine_ids.popitem(last=False)
        return engine_id

    def cancel(self, query_id: str, reason: str = "cancelled") -> bool:
        """Cancel a running query; False if no such query is running."""
        run = self._runs.get(query_id)
        if run is None:
            return False
        run.fail(QueryCancelled(query_id, reason))
        return True

    def state_of(self, query_id: str) -> QueryState | None:
        """The run state of a running query (for inspection and tests)."""
        run = self._runs.get(query_id)
        return None if run is None else run.state

    @property
    def num_running_queries(self) -> int:
        return len(self._runs)

    @property
    def num_open_requests(self) -> int:
        return self._num_open_requests

    @property
    def num_plans_built(self) -> int:
        """Graph analyses so far (plan cache misses)."""
        return self._planner.num_builds

    # -- routing ------------------------------------------------------------------
    def _submit_request(self, engine: str, request: EngineRequest) -> None:
        self._num_open_requests += 1
        self.workers[engine].add(request)

    def _on_dispatch(self, engine: str, batch: Batch) -> None:
        batch_size = len(batch.requests)
        for request in batch.requests:
            run = self._runs_by_engine_id.get(request.query_id)
            if run is not None:
                run.on_dispatched(request, batch_size, engine)

    def _on_result(
        self, request: EngineRequest, outputs: Outputs | None, error: BaseException | None
    ) -> None:
        self._num_open_requests -= 1
        run = self._runs_by_engine_id.get(request.query_id)
        if run is not None:
            run.on_result(request, outputs, error)

    def _is_more_expected(self, scheduler: EngineScheduler) -> bool:
        # Only requests already in flight (or queued elsewhere) can lead to more work here.
        return self._num_open_requests > scheduler.num_queued

    def _expire(self, run: QueryRun, deadline_s: float) -> None:
        if self._runs.get(run.query_id) is run:
            del self._deadline_timers[run.query_id]
            run.fail(QueryTimeout(run.query_id, deadline_s, run.unfinished_nodes()))

    def _on_future_done(self, run: QueryRun, future: asyncio.Future[QueryResult]) -> None:
        if future.cancelled() and self._runs.get(run.query_id) is run:
            self.cancel(run.query_id, reason="cancelled by its caller")

    def _on_end(self, run: QueryRun) -> None:
        query_id, engine_id = run.query_id, run.engine_query_id
        del self._runs[query_id]
        del self._runs_by_engine_id[engine_id]
        timer = self._deadline_timers.pop(query_id, None)
        if timer is not None:
            timer.cancel()
        for engine in sorted(run.engines_seen):
            worker = self.workers[engine]
            dropped = worker.remove_query(engine_id)
            self._num_open_requests -= len(dropped)
            if run.error is None:
                worker.release(engine_id)
            else:
                worker.abort(engine_id)
        future = self._futures.pop(query_id)
        if future.done():
            return
        if run.error is not None:
            future.set_exception(run.error)
        else:
            assert run.result is not None
            future.set_result(run.result)

    # -- checks -------------------------------------------------------------------
    def _require_started(self) -> Clock:
        if self._clock is None or not self.workers:
            raise RuntimeError("the runtime is not started: use `async with runtime:`")
        return self._clock
