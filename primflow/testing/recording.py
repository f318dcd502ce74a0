"""An engine wrapper that records what the engine was asked to do, for tests.

``RecordingEngine`` forwards the whole engine contract (``engines/base.py``) to the
engine it wraps (real or fake) and keeps every submitted request, in order, so a test
can check what reached the engine whichever scheme submitted it: the runtime's engine
workers and the baselines both call ``submit``. ``prompt(llm_request_id)`` is the user
content an LLM call received: its prefill phases' templates rendered with their
inputs, joined in order, as the LLM engines render them. It owns the engine it wraps:
``start`` and ``close`` reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from primflow.engines.base import Engine, EngineHealth, EngineRequest, Outputs
from primflow.graph.ir import PREFILL_OPS
from primflow.prompts import render


class RecordingEngine(Engine):
    def __init__(self, inner: Engine) -> None:
        self.kind = inner.kind
        super().__init__(inner.name, inner.profile)
        self.inner = inner
        self.requests: list[EngineRequest] = []

    @property
    def max_batch_size(self) -> int:
        return self.inner.max_batch_size

    @property
    def max_concurrent_batches(self) -> int:
        return self.inner.max_concurrent_batches

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    def submit(self, batch: Sequence[EngineRequest]) -> list[asyncio.Future[Outputs]]:
        self.requests.extend(batch)
        return self.inner.submit(batch)

    def abort(self, query_id: str) -> None:
        self.inner.abort(query_id)

    def release(self, query_id: str) -> None:
        self.inner.release(query_id)

    def health(self) -> EngineHealth:
        return self.inner.health()

    def requests_of(self, query_id: str) -> list[EngineRequest]:
        """The requests of the query that engines know as ``query_id``, in order."""
        return [r for r in self.requests if r.query_id == query_id]

    def prompt(self, llm_request_id: str) -> str:
        """The user content the LLM call ``llm_request_id`` received (module docstring)."""
        phases = [
            r for r in self.requests if r.llm_request_id == llm_request_id and r.op in PREFILL_OPS
        ]
        if not phases:
            raise KeyError(f"no prefill of LLM call {llm_request_id!r} was submitted")
        return "".join(render(str(r.params.get("template", "")), r.inputs) for r in phases)
