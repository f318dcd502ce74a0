"""A stack whose judge decides as a test says: force a branch of a judged app.

``fixed_judge_factory(decision, rest)`` is an :class:`~primflow.session.EngineStack`
factory: the engine named ``judge`` is a fake LLM whose judge decode always answers
``decision`` (e.g. "yes" to take search_augmented's search branch); every other engine
comes from ``rest`` (the fakes, or the real embedded engines). Every engine is wrapped
in a :class:`~primflow.testing.recording.RecordingEngine`, so a test can read what each
received. A small model's own judgement is not something a test can rely on; the rest
of the stack runs for real.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from primflow.engines.base import Engine, EngineKind
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.testing.fake_llm import FakeLLM
from primflow.testing.recording import RecordingEngine

JUDGE_ENGINE = "judge"
JUDGE_DECODE = "judge.decode"  # the Judge component's decode node (p-graph and e-graph)

Factory = Callable[[str, EngineKind, CoreBudget, LatencyProfile | None], Engine]


def fixed_judge_factory(decision: str, rest: Factory, *, latency_scale: float = 0.001) -> Factory:
    return scripted_judge_factory({JUDGE_DECODE: decision}, rest, latency_scale=latency_scale)


def scripted_judge_factory(
    decisions: Mapping[str, str], rest: Factory, *, latency_scale: float = 0.001
) -> Factory:
    """Like :func:`fixed_judge_factory`, with a decision per judge decode node (e.g.
    ``{"hops.r1.enough.decode": "no", "hops.r2.enough.decode": "yes"}`` for a loop)."""

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine:
        if name == JUDGE_ENGINE:
            judge = FakeLLM(name, profile, latency_scale=latency_scale)
            for node, decision in decisions.items():
                judge.set_response(node, decision)
            return RecordingEngine(judge)
        return RecordingEngine(rest(name, kind, budget, profile))

    return build
