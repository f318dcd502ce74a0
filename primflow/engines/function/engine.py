"""The function engine: runs users' Python functions (``Op.FUNCTION`` nodes).

Owns where a user's function runs. Invariants:

- ``submit`` returns at once. A sync function runs on the engine's pool: threads by
  default (``max_num_workers`` of them, so that many calls run at once), or processes
  with ``use_processes=True`` for CPU-bound pure functions, which must be importable by
  name (defined at module level; a lambda or a nested function is refused with an
  error saying so). An async function runs on the event loop (it must not block it).
- Calls of one batchable function with the same settings and broadcast inputs, from
  any queries in one batch, are merged into one call over all their items and split
  back (the function maps items one to one, checked on every call).
- A function that raises fails only the requests of that call, as an
  :class:`EngineError` naming the engine, the node and the function.
- ``abort(query_id)`` cancels that query's futures at once (a call already running on
  a pool thread finishes; its result is dropped); work for an ended query is refused.
- While a call runs the engine counts as busy in its ``CoreBudget``, as a
  ``ThreadedEngine`` does, so a deferrable engine (the LLM) yields the cores to it.
"""

from __future__ import annotations

import asyncio
import importlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from primflow.engines.base import Engine, EngineError, EngineHealth, EngineKind, EngineRequest
from primflow.engines.function.call import (
    FunctionCallError,
    Outputs,
    call_async,
    call_sync,
    function_of,
    merge_key,
    merged_inputs,
    num_items,
    outputs_of,
    raised,
    settings_of,
    split_outputs,
)
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.graph.ops import FunctionRef

DEFAULT_MAX_NUM_WORKERS = 2  # one per core here; a function that waits on I/O wants more
MAX_NUM_CLOSED_QUERIES = 10_000


class FunctionEngine(Engine):
    """Runs FUNCTION nodes on a thread (or process) pool; see the module docstring.

    Examples:
        >>> import asyncio
        >>> from primflow import EngineRequest, Op, function
        >>> from primflow.engines.function import FunctionEngine
        >>> @function(batchable=True)
        ... def lengths(texts: list[str]) -> list[str]:
        ...     return [str(len(t)) for t in texts]
        >>> def request(query_id, texts):
        ...     params = {"function": lengths.ref}
        ...     return EngineRequest(query_id, "lengths", Op.FUNCTION, {"texts": texts}, params)
        >>> async def main():
        ...     engine = FunctionEngine()
        ...     futures = engine.submit([request("q0", ["ab"]), request("q1", ["abc", "d"])])
        ...     try:
        ...         return [await f for f in futures], engine.num_calls
        ...     finally:
        ...         await engine.close()
        >>> asyncio.run(main())  # the two queries' items went in one call
        ([{'result': ['2']}, {'result': ['3', '1']}], 1)
    """

    kind = EngineKind.FUNCTION

    def __init__(
        self,
        name: str = "python",
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
        *,
        max_num_workers: int = DEFAULT_MAX_NUM_WORKERS,
        use_processes: bool = False,
    ) -> None:
        if max_num_workers < 1:
            raise ValueError(f"engine {name!r}: max_num_workers must be >= 1")
        super().__init__(name, profile)
        self.budget = budget
        self.max_num_workers = max_num_workers
        self.use_processes = use_processes
        self.num_calls = 0  # calls made (merged calls count once), for tests and benchmarks
        self._executor: Executor | None = None
        self._futures_by_query: dict[str, set[asyncio.Future[Outputs]]] = {}
        self._closed_queries: OrderedDict[str, None] = OrderedDict()
        self._tasks: dict[asyncio.Task[None], list[asyncio.Future[Outputs]]] = {}
        self._num_running = 0

    @property
    def max_concurrent_batches(self) -> int:
        return self.max_num_workers

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outputs]] = []
        live: list[tuple[EngineRequest, asyncio.Future[Outputs]]] = []
        for request in batch:
            future: asyncio.Future[Outputs] = loop.create_future()
            futures.append(future)
            if request.query_id in self._closed_queries:
                reason = f"query {request.query_id!r} already ended"
                future.set_exception(EngineError(self.name, request.node, reason))
                continue
            self._track(request.query_id, future)
            live.append((request, future))
        for call in _group_calls(live):
            call_futures = [f for _, f in call]
            task = loop.create_task(self._run_call(call))
            self._tasks[task] = call_futures
            task.add_done_callback(self._tasks.pop)
        return futures

    async def _run_call(self, call: list[tuple[EngineRequest, asyncio.Future[Outputs]]]) -> None:
        requests = [r for r, _ in call]
        self._num_running += len(call)
        if self.budget is not None:
            self.budget.begin(self.name)
        try:
            shares = await self._outputs(requests)
        except Exception as exc:  # the function's failure fails this call's requests alone
            shares = [self._error(r, exc) for r in requests]
        finally:
            self._num_running -= len(call)
            if self.budget is not None:
                self.budget.end(self.name)
        for (_, future), share in zip(call, shares, strict=True):
            if future.done():  # aborted meanwhile
                continue
            if isinstance(share, BaseException):
                future.set_exception(share)
            else:
                future.set_result(share)

    async def _outputs(self, requests: list[EngineRequest]) -> list[Outputs | BaseException]:
        first = requests[0]
        ref = function_of(first.params)
        settings = settings_of(first.params)
        inputs = (
            merged_inputs(ref, [r.inputs for r in requests]) if len(requests) > 1 else first.inputs
        )
        self.num_calls += 1
        if ref.is_async:
            outputs = await call_async(ref, inputs, settings)
        elif self.use_processes:
            outputs = await self._call_in_process(first, ref, inputs, settings)
        else:
            loop = asyncio.get_running_loop()
            outputs = await loop.run_in_executor(self._pool(), call_sync, ref, inputs, settings)
        if len(requests) == 1:
            return [outputs]
        assert ref.items_port is not None  # only a batchable function's calls merge
        sizes = [num_items(r.inputs.get(ref.items_port)) for r in requests]
        return list(split_outputs(ref, outputs, sizes))

    async def _call_in_process(
        self,
        request: EngineRequest,
        ref: FunctionRef,
        inputs: Mapping[str, Any],
        settings: Mapping[str, Any],
    ) -> Outputs:
        module, qualname = ref.name.split(":", 1)
        if _resolve(module, qualname) is not ref.fn:
            raise EngineError(
                self.name,
                request.node,
                f"function {ref.name} cannot run in a process: it is not importable by "
                "that name (a lambda, or defined inside another function); define it at "
                "module level, or run it on a thread engine",
            )
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._pool(), _call_by_name, module, qualname, dict(inputs), dict(settings)
            )
        except Exception as exc:  # raised in the child, or its values did not pickle
            raise raised(ref, exc) from exc
        return outputs_of(ref, result, inputs)

    def _error(self, request: EngineRequest, exc: Exception) -> EngineError:
        if isinstance(exc, EngineError):
            return exc
        return EngineError(self.name, request.node, str(exc))

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.use_processes:
                self._executor = ProcessPoolExecutor(self.max_num_workers)
            else:
                prefix = f"engine-{self.name}"
                self._executor = ThreadPoolExecutor(self.max_num_workers, prefix)
        return self._executor

    def _track(self, query_id: str, future: asyncio.Future[Outputs]) -> None:
        live = self._futures_by_query.setdefault(query_id, set())
        live.add(future)

        def forget(done: asyncio.Future[Outputs]) -> None:
            live.discard(done)
            if not live and self._futures_by_query.get(query_id) is live:
                del self._futures_by_query[query_id]

        future.add_done_callback(forget)

    def _close_query(self, query_id: str) -> None:
        self._closed_queries[query_id] = None
        while len(self._closed_queries) > MAX_NUM_CLOSED_QUERIES:
            self._closed_queries.popitem(last=False)

    def abort(self, query_id: str) -> None:
        for future in list(self._futures_by_query.pop(query_id, ())):
            future.cancel()
        for task, futures in list(self._tasks.items()):
            if all(f.done() for f in futures):
                task.cancel()  # an async call that only served aborted queries
        self._close_query(query_id)

    def release(self, query_id: str) -> None:
        self._futures_by_query.pop(query_id, None)
        self._close_query(query_id)

    def health(self) -> EngineHealth:
        return EngineHealth(
            is_healthy=True, num_running=self._num_running, load=float(self._num_running)
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for futures in list(self._futures_by_query.values()):
            for future in list(futures):
                future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _group_calls(
    live: list[tuple[EngineRequest, asyncio.Future[Outputs]]],
) -> list[list[tuple[EngineRequest, asyncio.Future[Outputs]]]]:
    """One call per request, except requests of a batchable function that merge."""
    calls: list[list[tuple[EngineRequest, asyncio.Future[Outputs]]]] = []
    merged: dict[tuple[Any, ...], list[tuple[EngineRequest, asyncio.Future[Outputs]]]] = {}
    for request, future in live:
        key = merge_key(request.params, request.inputs)
        if key is None:
            calls.append([(request, future)])
        elif key in merged:
            merged[key].append((request, future))
        else:
            merged[key] = [(request, future)]
            calls.append(merged[key])
    return calls


def _resolve(module: str, qualname: str) -> Any:
    """The function ``module:qualname`` names (unwrapping ``@function``), or None."""
    if "<" in qualname:  # <lambda>, <locals>: not reachable by name
        return None
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return getattr(target, "__wrapped__", target)


def _call_by_name(
    module: str, qualname: str, inputs: Mapping[str, Any], settings: Mapping[str, Any]
) -> Any:
    """Runs in a pool process: find the function by name and call it."""
    fn = _resolve(module, qualname)
    if fn is None:
        raise FunctionCallError(f"function {module}:{qualname} is not importable here")
    return fn(**inputs, **settings)
