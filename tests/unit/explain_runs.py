"""Shared by the explain and tracing tests: two concurrent naive_rag questions on the
model-free fakes, recorded for explain (and traced when a hook is given)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from primflow.explain import ExplainRecorder, Explanation, explain_question
from primflow.runtime.hooks import Hook
from primflow.session import fake_factory
from primflow.session.session import Session
from primflow.session.stack import EngineStack

DOCUMENTS = ["Employees get 25 days of paid leave. " * 30, "HNSW is a graph index. " * 30]
QUESTIONS = ("How much leave?", "What is HNSW?")


async def explain_pair(
    hooks: Sequence[Hook] = (), *, with_bound: bool = True
) -> tuple[list[Explanation], ExplainRecorder]:
    stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.02))
    async with stack:
        recorder = ExplainRecorder(stack.budget, ())
        async with Session(stack, hooks=[*recorder.hooks, *hooks]) as session:
            recorder.passes = list(session.optimizer.passes)
            explanations = await asyncio.gather(
                *(
                    explain_question(
                        session, recorder, "naive_rag", q, DOCUMENTS, with_bound=with_bound
                    )
                    for q in QUESTIONS
                )
            )
    return list(explanations), recorder
