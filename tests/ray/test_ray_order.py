"""Calls to one engine actor reach its engine in the order the driver sent them.

Ray runs an async actor's calls concurrently and does not keep their order; the phases
of one LLM call (partial prefill, full prefill, decode) sent back to back must still
arrive in order, or the prompt is assembled wrongly. The fake LLM (the same class as
in-process) builds its prompt from its prefills in arrival order, so a reordering shows
as a different answer.
"""

from __future__ import annotations

import asyncio
import sys

import pytest
import ray
from ray import cloudpickle

from primflow.engines.base import Engine, EngineRequest, Outputs
from primflow.engines.placement import CoreBudget
from primflow.engines.ray_actors import ActorResources, RayEngine, create_actors
from primflow.graph.ir import Op
from primflow.testing.fake_llm import FakeLLM

pytestmark = pytest.mark.ray

NUM_CALLS = 40

# The actor cannot import this test module: ship its builder by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _build(budget: CoreBudget) -> Engine:
    return FakeLLM("llm", latency_scale=0.0)


def _phases(call: int) -> list[EngineRequest]:
    query_id, call_id = f"q{call}", f"q{call}/answer"
    ops = (Op.LLM_PARTIAL_PREFILL, Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL)
    prefills = [
        EngineRequest(
            query_id,
            f"prefill{k}",
            op,
            {"x": f"part {k} of call {call}"},
            {"template": "{x}. "},
            llm_request_id=call_id,
        )
        for k, op in enumerate(ops)
    ]
    decode = EngineRequest(
        query_id, "decode", Op.LLM_DECODE, {}, {"max_tokens": 8}, llm_request_id=call_id
    )
    return [*prefills, decode]


async def _answers(engine: Engine) -> list[str]:
    """Every call's phases submitted one batch each, back to back, none awaited."""
    decodes: list[asyncio.Future[Outputs]] = []
    for call in range(NUM_CALLS):
        *prefills, decode = _phases(call)
        for request in prefills:
            engine.submit([request])
        decodes += engine.submit([decode])
    outputs = await asyncio.gather(*decodes)
    return [str(output["text"]) for output in outputs]


async def test_phases_sent_back_to_back_reach_the_engine_in_order(
    cluster: dict[str, str],
) -> None:
    expected = await _answers(FakeLLM("llm", latency_scale=0.0))
    [(actor, description)] = create_actors("llm", _build, ActorResources(num_cpus=0), 1)
    remote = RayEngine("llm", 0, actor, description)
    try:
        await remote.start()
        assert await _answers(remote) == expected
    finally:
        ray.kill(actor, no_restart=True)
