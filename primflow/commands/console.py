"""What `primflow run` prints: streamed answers, progress bars, timing breakdowns.

The command (``primflow/commands/run.py``) checks the inputs; this module builds the
stack, asks each question and writes to the terminal. Answers stream to stdout as the
final decode produces them; bars go to stderr (so stdout can be piped); ``--json``
prints one line per question and nothing else on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from primflow.commands.engine_options import embedded_settings
from primflow.engines.base import EngineError
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Node
from primflow.session.engine_config import stack_factory
from primflow.session.factories import EngineUnavailable, embedded_factory, pgvector_factory
from primflow.session.session import Answer, Session
from primflow.session.stack import EngineStack, StackError, read_profiles
from primflow.tracing import TracingUnavailable, tracing_hooks
from primflow.tracing.setup import shutdown as shutdown_tracing

if TYPE_CHECKING:
    from primflow.commands.run_inputs import RunInputs

EXIT_BAD_INPUT = 2
EXIT_ENGINES_UNAVAILABLE = 3
EXIT_QUERY_FAILED = 4
# A progress bar appears only for graphs with at least this many engine primitives.
MIN_PRIMITIVES_FOR_BAR = 8
MAX_NAME_WIDTH = 60  # the breakdown's name column; longer names run past it, whole


async def answer_all(args: argparse.Namespace, inputs: RunInputs) -> int:
    profiles: dict[str, LatencyProfile] = read_profiles(args.profiles)
    try:
        trace = tracing_hooks()  # PRIMFLOW_TRACE: off (no hook) unless it names an exporter
    except TracingUnavailable as exc:
        print(f"primflow run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        stack = EngineStack.for_apps(
            [inputs.app],
            stack_factory(getattr(args, "engines", None), _factory(args), embedded_settings(args)),
            placement=args.placement,
            profiles=profiles,
            num_cores=args.cores,
        )
        await stack.start()  # a remote engine checks its server and model here
    except (EngineUnavailable, StackError, EngineError) as exc:
        print(f"primflow run: {exc}", file=sys.stderr)
        return EXIT_ENGINES_UNAVAILABLE
    num_failed = 0
    try:
        async with Session(stack, hooks=trace) as session:
            for question in inputs.questions:
                if not await _answer_one(session, args, inputs, question):
                    num_failed += 1
    finally:
        await stack.close()
        shutdown_tracing()
    return EXIT_QUERY_FAILED if num_failed else 0


def _factory(args: argparse.Namespace) -> Any:
    """The embedded engines (``--llm-model`` / ``--embed-model`` choose their models);
    with ``--pgvector``, the vector index is that server."""
    return pgvector_factory(
        getattr(args, "pgvector", None), embedded_factory(embedded_settings(args))
    )


async def _answer_one(
    session: Session, args: argparse.Namespace, inputs: RunInputs, question: str
) -> bool:
    out = sys.stdout
    bar = _Bar(enabled=not args.json)
    if not args.json:
        out.write(f"Q: {question}\n")
        out.flush()
    try:
        answer = await session.ask(
            inputs.app,
            question,
            inputs.documents,
            scheme=args.scheme,
            on_text=None if args.json else _stream_to(out, bar),
            on_progress=bar.update,
            config_changes=inputs.config_changes,
            collection=inputs.collection,
        )
        if args.bound and answer.solo is None:
            # After the measured run, so it cannot warm caches for that run; and without
            # that run's cached prompts, so its primitives run as they would alone.
            session.forget_prefixes(answer.query_id)
            reference = await session.ask(
                inputs.app,
                question,
                inputs.documents,
                scheme="sequential",
                config_changes=inputs.config_changes,
                collection=inputs.collection,
            )
            answer.set_reference(reference)
    except Exception as exc:  # one failed question must not stop the others
        bar.close()
        if args.json:
            out.write(json.dumps({"question": question, "error": str(exc)}) + "\n")
        else:
            out.write("\n")
            print(f"primflow run: question failed: {exc}", file=sys.stderr)
        return False
    bar.close()
    if args.json:
        out.write(json.dumps(answer.to_json()) + "\n")
    else:
        if not bar.has_streamed:  # nothing streamed (e.g. an empty answer)
            out.write(f"A: {answer.text}")
        out.write("\n\n" + format_breakdown(answer) + "\n")
    out.flush()
    return True


def _stream_to(out: TextIO, bar: _Bar) -> Any:
    def write(text: str) -> None:
        if not bar.has_streamed:
            bar.close()  # the answer starts: the bar is done with the terminal
            bar.has_streamed = True
            out.write("A: ")
        out.write(text)
        out.flush()

    return write


class _Bar:
    """A tqdm bar over a query's engine primitives, shown for big graphs only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._is_closed = False
        self.has_streamed = False

    def update(self, node: Node, num_done: int, total: int) -> None:
        if not self.enabled or self._is_closed or total < MIN_PRIMITIVES_FOR_BAR:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="prim", file=sys.stderr, leave=False)
        self._bar.set_description(node.origin or node.name, refresh=False)
        self._bar.update(num_done - self._bar.n)

    def close(self) -> None:
        self._is_closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def format_scores(scores: dict[str, dict[str, float]]) -> str:
    """``yes -0.41 (logprob -1.22 - prior -0.81), no -1.37 (...)``: calibrated first."""
    return ", ".join(
        f"{answer} {s['calibrated']:+.2f} (logprob {s['logprob']:.2f} - prior {s['prior']:.2f}"
        + (f" + bias {s['bias']:+.2f})" if s.get("bias") else ")")
        for answer, s in scores.items()
    )


def format_breakdown(answer: Answer) -> str:
    """The per-primitive timing table; ``*`` marks the critical path."""
    if answer.bound_s is not None and answer.bound_ratio is not None:
        bound = (
            f"critical-path bound {answer.bound_s:.3f} s uncontended (ratio "
            f"{answer.bound_ratio:.2f})"
        )
    else:
        bound = "critical-path bound: pass --bound"
    lines = [
        f"latency {answer.latency_s:.3f} s ({answer.scheme}); {bound}; lowering "
        f"{answer.lower_s * 1e3:.1f} ms, optimization {answer.optimize_s * 1e3:.1f} ms"
        + (" (cached)" if answer.is_cache_hit else ""),
    ]
    if answer.passages:
        sources = ", ".join(f"{h.chunk.source}#{h.chunk.chunk_id}" for h in answer.passages)
        lines.append(f"passages: {sources}")
    if answer.decisions:
        chosen = ", ".join(f"{node} -> {choice}" for node, choice in answer.decisions.items())
        lines.append(f"decisions: {chosen}")
    for node, scores in answer.decision_scores.items():
        lines.append(f"scores: {node}: {format_scores(scores)}")
    for record in answer.rounds:
        cached = ", cached" if record.is_cache_hit else ""
        lines.append(
            f"round: {record.label}: +{record.num_nodes} primitives, lowered in "
            f"{record.lower_s * 1e3:.1f} ms, optimized incrementally in "
            f"{record.optimize_s * 1e3:.1f} ms{cached}"
        )
    if answer.rounds and answer.latency_s > 0:
        lines.append(
            f"re-optimization: {answer.reoptimize_s * 1e3:.1f} ms over {len(answer.rounds)} "
            f"rounds, {answer.reoptimize_s / answer.latency_s:.2%} of the query"
        )
    # Names in full (a cut name can match two nodes), up to a width that keeps rows on
    # one line of a wide terminal.
    width = min(max([9, *(len(p.node) for p in answer.timing.primitives)]), MAX_NAME_WIDTH)
    lines.append(
        f"  {'primitive':<{width}} {'engine':<12} {'start s':>8} {'queue s':>8} "
        f"{'service s':>9} {'batch':>5}"
    )
    for p in answer.timing.primitives:
        mark = "*" if p.is_critical else " "
        lines.append(
            f"{mark} {p.node:<{width}} {str(p.engine)[:12]:<12} {p.start_s:>8.3f} "
            f"{p.queue_s:>8.3f} {p.service_s:>9.3f} {p.batch_size:>5}"
        )
    lines.append("* = on the critical path of the measured service times")
    return "\n".join(lines)
