"""One engine name over several simulated instances, for the module-level baselines.

The baselines (``primflow.baselines``) submit each primitive straight to an engine,
with no engine scheduler. ``BalancedEngine`` is that engine in a simulation: it holds
the instances of one named engine and

- sends each call to the instance with the fewest requests in flight (for an LLM, the
  lowest reported load, its KV occupancy, then the fewest in flight; ties go to the
  instance that has served the fewest calls), and every phase
  of one LLM call (same ``llm_request_id``) to the instance that holds its KV state;
- queues calls at an instance that already runs ``max_concurrent_batches`` of them, as
  a real engine's own queue would (a fake alone would run them all at once).

Invariant: calls at one instance start in submission order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from primflow.engines.base import Engine, EngineHealth, EngineKind, EngineRequest, Outputs


class BalancedEngine(Engine):
    """Forwards calls to the least-loaded of ``instances`` (see the module docstring)."""

    def __init__(self, instances: Sequence[Engine]) -> None:
        if not instances:
            raise ValueError("a balanced engine needs at least one instance")
        first = instances[0]
        self.kind = first.kind
        super().__init__(first.name, first.profile)
        self.instances = list(instances)
        self._num_in_flight = [0] * len(instances)
        self._num_served = [0] * len(instances)  # ties go to the least used so far
        self._slots = [asyncio.Semaphore(i.max_concurrent_batches) for i in instances]
        self._instance_of_call: dict[str, int] = {}

    @property
    def max_batch_size(self) -> int:
        return self.instances[0].max_batch_size

    async def start(self) -> None:
        for instance in self.instances:
            await instance.start()

    async def close(self) -> None:
        for instance in self.instances:
            await instance.close()

    def health(self) -> EngineHealth:
        healths = [i.health() for i in self.instances]
        return EngineHealth(
            is_healthy=all(h.is_healthy for h in healths),
            num_running=sum(h.num_running for h in healths),
            load=sum(h.load for h in healths) / len(healths),
        )

    def pick(self, request: EngineRequest) -> int:
        """The instance a call goes to (see the module docstring)."""
        call_id = request.llm_request_id
        if call_id is not None and call_id in self._instance_of_call:
            return self._instance_of_call[call_id]
        indices = range(len(self.instances))
        in_flight, served = self._num_in_flight, self._num_served
        if self.kind is EngineKind.LLM:
            loads = [i.health().load for i in self.instances]
            chosen = min(indices, key=lambda i: (loads[i], in_flight[i], served[i]))
        else:
            chosen = min(indices, key=lambda i: (in_flight[i], served[i]))
        served[chosen] += 1
        if call_id is not None:
            self._instance_of_call[call_id] = chosen
        return chosen

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        requests = list(batch)
        if not requests:
            return []
        index = self.pick(requests[0])
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outputs]] = [loop.create_future() for _ in requests]
        self._num_in_flight[index] += len(requests)
        task = loop.create_task(self._run(index, requests, futures))

        def stop_if_cancelled(future: asyncio.Future[Outputs]) -> None:
            if future.cancelled():  # an aborted call stops waiting for its slot
                task.cancel()

        for future in futures:
            future.add_done_callback(stop_if_cancelled)
        return futures

    async def _run(
        self, index: int, requests: list[EngineRequest], futures: list[asyncio.Future[Outputs]]
    ) -> None:
        try:
            async with self._slots[index]:
                inner = self.instances[index].submit(requests)
                for outer, result in zip(futures, inner, strict=True):
                    await asyncio.wait([result])
                    if outer.done():
                        continue
                    if result.cancelled():
                        outer.cancel()
                    elif (exc := result.exception()) is not None:
                        outer.set_exception(exc)
                    else:
                        outer.set_result(result.result())
        finally:
            self._num_in_flight[index] -= len(requests)

    def abort(self, query_id: str) -> None:
        for instance in self.instances:
            instance.abort(query_id)
        self._forget_calls(query_id)

    def release(self, query_id: str) -> None:
        for instance in self.instances:
            instance.release(query_id)
        self._forget_calls(query_id)

    def _forget_calls(self, query_id: str) -> None:
        prefix = f"{query_id}/"
        for call_id in [c for c in self._instance_of_call if c.startswith(prefix)]:
            del self._instance_of_call[call_id]
