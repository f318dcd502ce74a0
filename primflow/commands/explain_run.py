"""The live half of `primflow explain`: build the engines, ask, explain."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from primflow.commands.console import EXIT_ENGINES_UNAVAILABLE, EXIT_QUERY_FAILED
from primflow.commands.console import _factory as engine_factory  # run's engines, --pgvector too
from primflow.commands.engine_options import embedded_settings
from primflow.engines.base import EngineError
from primflow.explain import ExplainRecorder, Explanation, explain_question
from primflow.session.engine_config import stack_factory
from primflow.session.factories import EngineUnavailable
from primflow.session.session import Session
from primflow.session.stack import EngineStack, StackError, read_profiles
from primflow.tracing import TracingUnavailable, tracing_hooks
from primflow.tracing.setup import shutdown

if TYPE_CHECKING:
    from primflow.commands.run_inputs import RunInputs


async def explain_live(
    args: argparse.Namespace, inputs: RunInputs
) -> tuple[int, Explanation | None]:
    try:
        trace = tracing_hooks(args.trace)
    except TracingUnavailable as exc:
        print(f"primflow explain: {exc}", file=sys.stderr)
        return 2, None
    try:
        stack = EngineStack.for_apps(
            [inputs.app],
            stack_factory(args.engines, engine_factory(args), embedded_settings(args)),
            placement=args.placement,
            profiles=read_profiles(args.profiles),
            num_cores=args.cores,
        )
        await stack.start()
    except (EngineUnavailable, StackError, EngineError) as exc:
        print(f"primflow explain: {exc}", file=sys.stderr)
        return EXIT_ENGINES_UNAVAILABLE, None
    recorder = ExplainRecorder(stack.budget, passes=())
    try:
        async with Session(stack, hooks=[*recorder.hooks, *trace]) as session:
            recorder.passes = list(session.optimizer.passes)
            explanation = await explain_question(
                session,
                recorder,
                inputs.app,
                inputs.questions[0],
                inputs.documents,
                config_changes=inputs.config_changes,
                collection=inputs.collection,
                with_bound=not args.no_bound,
            )
    except Exception as exc:
        print(f"primflow explain: the question failed: {exc}", file=sys.stderr)
        return EXIT_QUERY_FAILED, None
    finally:
        await stack.close()
        shutdown()
    return 0, explanation
