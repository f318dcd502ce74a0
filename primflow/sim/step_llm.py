"""A simulated LLM that runs in engine steps, like a continuous-batching engine.

``StepSimLLM`` serves every phase (prefill, decode, partial decode) as work on one
step loop per instance, instead of giving each request its own call-level latency:

- Each step carries one decode token of every generating sequence (up to
  ``max_num_seqs`` sequences), then prompt chunks of the waiting prefills in arrival
  order, all within ``max_batch_tokens`` tokens (the engine's ``n_batch``).
- A step takes the profile's step cost,
  ``step_base_s + step_per_seq_s * num_seqs + step_per_token_s * num_tokens``,
  the model ``primflow profile`` fits to the real engine's steps. So batching is as
  cheap as the profile says: on a GPU (large ``step_base_s``) a decode of 32
  sequences costs little more than one; on this CPU (large ``step_per_token_s``)
  it costs nearly 32 times as much.
- ``call_overhead_s`` (the profile's ``base_s``) is charged once per phase, outside
  the steps: the engine's own per-request work (a thread hop, tokenizing, detokenizing).
- A cancelled request leaves the loop at the next step boundary; a loop with no work
  ends, so an idle simulation never waits on it.

Invariant: the step loop only waits on the loop's clock (``asyncio.sleep``, or the
engine's ``delay`` when the simulation shares cores), so it runs in virtual time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from primflow.engines.base import EngineRequest
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import PREFILL_OPS
from primflow.testing.fake_llm import FakeLLM, num_output_tokens


@dataclass(eq=False, slots=True)
class _Work:
    """One phase's remaining tokens and the future its request awaits."""

    num_prompt_tokens: int
    num_decode_tokens: int
    done: asyncio.Future[None] = field(repr=False)

    @property
    def is_decoding(self) -> bool:
        return self.num_prompt_tokens == 0


def has_step_costs(profile: LatencyProfile) -> bool:
    """Whether ``profile`` has a step-cost model to run steps by."""
    return profile.step_base_s + profile.step_per_seq_s + profile.step_per_token_s > 0


@dataclass(frozen=True, slots=True)
class Step:
    """What one step carries: its sequences and tokens, and the work it advances."""

    num_seqs: int
    num_tokens: int
    tokens_by_work: dict[int, int]


def plan_step(works: list[_Work], max_num_seqs: int, max_num_tokens: int) -> Step:
    """Decode tokens first (one per generating sequence), then prompt chunks, in order."""
    tokens: dict[int, int] = {}
    budget = max_num_tokens
    for index, work in enumerate(works):
        if work.is_decoding and len(tokens) < max_num_seqs and budget > 0:
            tokens[index] = 1
            budget -= 1
    for index, work in enumerate(works):
        if work.is_decoding or budget <= 0 or len(tokens) >= max_num_seqs:
            continue
        chunk = min(work.num_prompt_tokens, budget)
        tokens[index] = chunk
        budget -= chunk
    return Step(len(tokens), sum(tokens.values()), tokens)


class StepSimLLM(FakeLLM):
    """The fake LLM's phases and outputs, with time spent in shared engine steps."""

    def __init__(
        self,
        name: str,
        profile: LatencyProfile | None = None,
        *,
        max_num_calls: int = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, profile, max_num_calls=max_num_calls, **kwargs)
        if not has_step_costs(self.profile):
            raise ValueError(f"engine {name!r}: its profile has no step costs (step_*_s are 0)")
        self._works: list[_Work] = []
        self._loop_task: asyncio.Task[None] | None = None
        self.num_steps = 0

    async def spend(self, request: EngineRequest) -> None:
        await asyncio.sleep(self.latency_scale * self.profile.base_s)
        is_prefill = request.op in PREFILL_OPS
        work = _Work(
            num_prompt_tokens=max(1, request.num_tokens) if is_prefill else 0,
            num_decode_tokens=0 if is_prefill else max(1, num_output_tokens(request)),
            done=asyncio.get_running_loop().create_future(),
        )
        self._works.append(work)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run_steps())
        try:
            await work.done
        finally:
            if work in self._works:  # cancelled: leave at the next step boundary
                self._works.remove(work)

    async def _run_steps(self) -> None:
        while self._works:
            works = list(self._works)
            step = plan_step(works, self.max_num_calls, self.profile.max_batch_tokens)
            step_s = self.profile.step_s(step.num_seqs, step.num_tokens)
            await self.delay(self.latency_scale * step_s)
            self.busy_s += self.latency_scale * step_s
            self.num_steps += 1
            for index, num_tokens in step.tokens_by_work.items():
                _advance(works[index], num_tokens)
            for work in works:
                if _is_finished(work) and not work.done.done():
                    work.done.set_result(None)
            self._works = [w for w in self._works if not _is_finished(w)]

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        await super().close()


def _advance(work: _Work, num_tokens: int) -> None:
    if work.num_prompt_tokens > 0:
        work.num_prompt_tokens = max(0, work.num_prompt_tokens - num_tokens)
    else:
        work.num_decode_tokens -= num_tokens


def _is_finished(work: _Work) -> bool:
    return work.num_prompt_tokens == 0 and work.num_decode_tokens <= 0
