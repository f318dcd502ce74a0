"""The query session: one question in, a streamed answer and its timings out.

``Session`` runs questions of any application (a built-in app's name, or an
:class:`~primflow.apps.App` of the user's own) on one :class:`EngineStack`, with any
scheme: ``primflow`` (lower -> optimize, cached -> the two-tier runtime) or a baseline
(``sequential``, ``parallel``: the unoptimized p-graph run module by module on the same
engines). Invariants:

- Several questions, of one app or several, may run at once on the same engines
  (co-location): each gets its own query id, and the engines keep their state apart.
- The answer streams through ``on_text`` from the final decode (the LLM decode that
  feeds the ``answer`` output), whatever the scheme.
- Optimized graphs are cached per (app, pass set, graph shape), so a repeated question
  shape pays lowering and a cache lookup only.
- A question asked against a persistent collection (``ask(..., collection=...)``) runs
  the app's template without its indexing part (``api/indexed.py``): its graph searches
  the collection and embeds only the question.
- An :class:`Answer` carries everything a report needs: text, passages, latency, the
  lowering and optimization time, and per-primitive timings with the critical path.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from primflow.api.config import Query
from primflow.api.documents import Document
from primflow.api.dynamic import LoopGrowth, RoundRecord
from primflow.api.indexed import IndexedTemplate, without_indexing
from primflow.api.lower import lower_query
from primflow.api.template import Template
from primflow.apps import App, get_app
from primflow.baselines import ABLATIONS, BASELINES, Ablation, baseline_executor, passes_named
from primflow.collections import Collection
from primflow.engines.base import EngineKind
from primflow.engines.scheduler import Batch
from primflow.graph.ir import INLINE_OPS, LLM_OPS, EdgeKind, Graph, Node, Op
from primflow.passes import GraphCache, Optimizer, OptimizeReport
from primflow.runtime import Hook, NodeStatus, NodeTiming, QueryResult, Runtime
from primflow.session.rounds import run_rounds
from primflow.session.solo_bound import PREFILL_PHASES, SoloBound, solo_bound
from primflow.session.stack import EngineStack
from primflow.session.timing import TimingReport, timing_report
from primflow.values import Hit

SCHEMES = ("primflow", *BASELINES)

OnText = Callable[[str], None]
# Called as each engine primitive ends: (node, number done, number in the graph).
OnProgress = Callable[[Node, int, int], None]


@dataclass
class Answer:
    """One answered question: the text, the passages, the latency, the time spent
    lowering and optimizing, the graph that ran and per-primitive timings.

    Examples:
        >>> import asyncio
        >>> from primflow import EngineStack, Session
        >>> from primflow.session import fake_factory
        >>> async def ask(question, documents):
        ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        ...     async with stack, Session(stack) as session:
        ...         return await session.ask("naive_rag", question, documents)
        >>> answer = asyncio.run(ask("How much leave?", ["Employees get 25 days of leave."]))
        >>> answer.app, answer.text
        ('naive_rag', 'Answer ...: a deterministic fake reply.')
        >>> [p.chunk.source for p in answer.passages], answer.latency_s > 0
        (['doc-0'], True)
        >>> answer.timing.critical_path[-1], answer.to_json()["optimize_cache_hit"]
        ('synthesize.decode', False)
    """

    app: str
    scheme: str
    question: str
    query_id: str
    text: str
    passages: list[Hit]
    latency_s: float  # submit to last output, as the runtime measured it
    lower_s: float
    optimize_s: float
    is_cache_hit: bool
    graph: Graph
    timing: TimingReport
    outputs: dict[str, Any] = field(default_factory=dict)
    # The dependencies the scheme waited on (the e-graph for primflow; the module order
    # on top of the p-graph for a baseline), over the nodes of ``graph``.
    honored: Graph | None = None
    num_tokens: dict[str, int] = field(default_factory=dict)  # prompt tokens per prefill phase
    solo: SoloBound | None = None  # set by set_reference
    # Constrained decisions (decode node -> choice) and the rounds a loop appended.
    decisions: dict[str, str] = field(default_factory=dict)
    rounds: list[RoundRecord] = field(default_factory=list)

    @property
    def reoptimize_s(self) -> float:
        """Time spent lowering and optimizing the rounds a loop appended while it ran."""
        return sum(r.lower_s + r.optimize_s for r in self.rounds)

    @property
    def bound_s(self) -> float | None:
        """Critical-path lower bound from uncontended latencies; None without a reference."""
        return self.solo.bound_s if self.solo is not None else None

    @property
    def bound_ratio(self) -> float | None:
        bound_s = self.bound_s
        return self.latency_s / bound_s if bound_s else None

    def set_reference(self, reference: Answer) -> None:
        """Compute :attr:`solo` from ``reference``: the same question (same app and
        settings) run with the ``sequential`` scheme, whose primitives ran alone."""
        if reference.scheme != "sequential":
            raise ValueError(f"the reference must be a sequential run, not {reference.scheme!r}")
        if (reference.app, reference.question) != (self.app, self.question):
            raise ValueError(
                f"the reference answers {reference.app}: {reference.question!r}, "
                f"not {self.app}: {self.question!r}"
            )
        self.solo = solo_bound(
            self.graph,
            self.honored or self.graph,
            reference.graph,
            {p.node: p.service_s for p in reference.timing.primitives},
            {p.node: p.service_s for p in self.timing.primitives},
            self.num_tokens,
        )

    def per_primitive_s(self) -> dict[str, float]:
        return {p.node: round(p.service_s, 6) for p in self.timing.primitives}

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "scheme": self.scheme,
            "question": self.question,
            "answer": self.text,
            "latency_s": round(self.latency_s, 6),
            "bound_s": _rounded(self.bound_s, 6),
            "bound_ratio": _rounded(self.bound_ratio, 4),
            "measured_path_s": round(self.timing.bound_s, 6),
            "lower_s": round(self.lower_s, 6),
            "optimize_s": round(self.optimize_s, 6),
            "optimize_cache_hit": self.is_cache_hit,
            "passages": [
                {"source": h.chunk.source, "chunk_id": h.chunk.chunk_id, "score": h.score}
                for h in self.passages
            ],
            "critical_path": self.timing.critical_path,
            "bound_path": self.solo.path if self.solo is not None else None,
            "primitives": self.timing.to_dicts(),
            "decisions": dict(self.decisions),
            "rounds": [r.to_dict() for r in self.rounds],
            "reoptimize_s": round(self.reoptimize_s, 6),
            "reoptimize_share": round(self.reoptimize_s / self.latency_s, 6)
            if self.latency_s > 0
            else 0.0,
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class _SessionHook(Hook):
    """Routes runtime events to the session's per-query callbacks."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, str], OnText] = {}
        self.node_done: dict[str, Callable[[str, NodeTiming], None]] = {}
        self.num_tokens: dict[str, dict[str, int]] = {}  # query -> prefill phase -> tokens

    def on_batch_formed(self, engine: str, batch: Batch, now_s: float) -> None:
        # The worker calls this before submitting, so the engine sees the callback.
        for request in batch.requests:
            stream = self.streams.get((request.query_id, request.node))
            if stream is not None:
                request.on_text = stream
            tokens = self.num_tokens.get(request.query_id)
            if tokens is not None and request.op in PREFILL_PHASES:
                tokens[request.node] = request.num_tokens

    def on_node_done(
        self, query_id: str, node: str, status: NodeStatus, timing: NodeTiming
    ) -> None:
        callback = self.node_done.get(query_id)
        if callback is not None and status is NodeStatus.DONE:
            callback(node, timing)


class Session:
    """Answers questions on a started stack (see the module docstring).

    ``ask`` takes a built-in app's name or an :class:`~primflow.apps.App` of your own,
    lowers the question, optimizes the graph (cached per graph shape) and runs it.

    Examples:
        >>> import asyncio
        >>> from primflow import EngineStack, Session
        >>> from primflow.session import fake_factory
        >>> async def ask(question, documents):
        ...     stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.0))
        ...     async with stack, Session(stack) as session:
        ...         return await session.ask("naive_rag", question, documents)
        >>> answer = asyncio.run(ask("How much leave?", ["Employees get 25 days of leave."]))
        >>> answer.scheme, answer.passages[0].chunk.text
        ('primflow', 'Employees get 25 days of leave.')
    """

    def __init__(
        self,
        stack: EngineStack,
        *,
        ablation: Ablation | str = "full",
        max_wait_ms: float = 2.0,
        hooks: Sequence[Hook] = (),
    ) -> None:
        """``hooks`` also watch the runtime (e.g. a server's metrics and per-query events)."""
        self.stack = stack
        self.ablation = ABLATIONS[ablation] if isinstance(ablation, str) else ablation
        self.optimizer = Optimizer(
            passes=passes_named(self.ablation.passes, stack.profiles), cache=GraphCache()
        )
        self._hook = _SessionHook()
        self.runtime = Runtime(
            stack.borrowed(),
            policy=self.ablation.policy,
            max_wait_ms=max_wait_ms,
            hooks=[self._hook, *hooks],
            profiles=stack.profiles,
        )
        self._apps: dict[str, tuple[App, Template]] = {}
        self._indexed: dict[str, IndexedTemplate] = {}
        self._is_started = False

    async def start(self) -> None:
        if not self._is_started:
            await self.stack.start()
            await self.runtime.start()
            self._is_started = True

    async def close(self) -> None:
        """Stops the runtime; the stack's engines stay up (their owner closes them)."""
        if self._is_started:
            await self.runtime.close()
            self._is_started = False

    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ask(
        self,
        app: App | str,
        question: str,
        documents: Sequence[Document | str] = (),
        *,
        scheme: str = "primflow",
        on_text: OnText | None = None,
        on_progress: OnProgress | None = None,
        config_changes: Mapping[str, Any] | None = None,
        collection: Collection | None = None,
        query_id: str | None = None,
        deadline_s: float | None = None,
        priority: int = 0,
    ) -> Answer:
        """Answer ``question`` with ``app`` over ``documents``, or over a persistent
        ``collection`` (then the query skips indexing: its graph searches the
        collection and embeds only the question).

        ``query_id``: the caller's id (unique on the stack: ``stack.new_query_id``),
        so it can match hook events to this query before the answer exists.
        ``deadline_s``: seconds from the start of the run; past it the query ends in
        ``QueryTimeout`` (primflow scheme only: the baselines have no deadline).
        ``priority``: every engine serves a query of higher priority before queries of
        lower priority (0 by default; primflow scheme only)."""
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r} (known: {', '.join(SCHEMES)})")
        if deadline_s is not None and scheme != "primflow":
            raise ValueError(f"the {scheme} scheme takes no deadline")
        if priority != 0 and scheme != "primflow":
            raise ValueError(f"the {scheme} scheme takes no priority")
        app, template = self._app(app)
        app_name = app.name
        query = app.query(question, documents, **(config_changes or {}))
        template_key = app_name
        if collection is not None:
            template, query = self._collection_query(app, query, collection)
            template_key = template.name
        query_id = query_id or self.stack.new_query_id(app_name)
        started_s = time.perf_counter()
        lowered = lower_query(template, query)
        lower_s = time.perf_counter() - started_s
        growth = lowered.growth
        if scheme == "primflow":
            key = f"{template_key}/{'+'.join(self.ablation.passes)}"
            graph, report = self.optimizer.optimize(lowered.graph, template_id=key)
            optimize_s, is_cache_hit = report.total_s, report.is_cache_hit
            if growth is not None:  # later rounds: optimized on their own, cached
                graph = growth.attach(graph, self._optimize_round, key)
        else:
            graph, optimize_s, is_cache_hit = lowered.graph, 0.0, False
        progress = _Progress(graph, on_progress)
        stream_nodes = answer_decode_nodes(graph) if on_text is not None else frozenset()
        num_tokens: dict[str, int] = {}
        if growth is not None:
            on_round = partial(self._on_round, query_id, progress, on_text)
            growth.on_round.append(on_round)
        if growth is not None and scheme != "primflow":
            executor = baseline_executor(scheme, self.stack.engines)
            result, honored = await run_rounds(
                executor, growth, lowered.graph, lowered.inputs, query_id, progress.done
            )
            graph = honored if result.graph is None else result.graph
        elif scheme == "primflow":
            result = await self._run_primflow(
                graph,
                lowered.inputs,
                query_id,
                stream_nodes,
                on_text,
                progress,
                num_tokens,
                deadline_s,
                priority,
                growth,
            )
            graph = result.graph or graph
            honored = graph
        else:
            executor = baseline_executor(scheme, self.stack.engines)
            honored = executor.dependency_graph(graph)
            result = await executor.run(
                graph,
                lowered.inputs,
                query_id=query_id,
                stream_nodes=stream_nodes,
                on_text=on_text,
                on_node_done=lambda node, _t: progress.done(node.name),
            )
        answer = _answer(
            app_name, scheme, question, result, graph, honored, lower_s, optimize_s, is_cache_hit
        )
        answer.num_tokens = num_tokens
        if growth is not None:
            answer.rounds = list(growth.records)
        if scheme == "sequential":  # its primitives ran alone: it is its own reference
            answer.set_reference(answer)
        return answer

    async def _run_primflow(
        self,
        graph: Graph,
        inputs: Mapping[str, Any],
        query_id: str,
        stream_nodes: frozenset[str],
        on_text: OnText | None,
        progress: _Progress,
        num_tokens: dict[str, int],
        deadline_s: float | None = None,
        priority: int = 0,
        growth: LoopGrowth | None = None,
    ) -> QueryResult:
        for node in stream_nodes:
            assert on_text is not None
            self._hook.streams[(query_id, node)] = on_text
        self._hook.node_done[query_id] = lambda node, _t: progress.done(node)
        self._hook.num_tokens[query_id] = num_tokens
        try:
            return await self.runtime.run(
                graph,
                inputs,
                query_id=query_id,
                deadline_s=deadline_s,
                priority=priority,
                growth=growth,
            )
        finally:
            for stream_query, node in list(self._hook.streams):
                if stream_query == query_id:
                    self._hook.streams.pop((query_id, node), None)
            self._hook.node_done.pop(query_id, None)
            self._hook.num_tokens.pop(query_id, None)

    def _optimize_round(self, graph: Graph, template_id: str) -> tuple[Graph, OptimizeReport]:
        """Optimize one appended round on its own (api/dynamic.py), cached by shape."""
        return self.optimizer.optimize(graph, template_id=template_id)

    def _on_round(
        self, query_id: str, progress: _Progress, on_text: OnText | None, graph: Graph
    ) -> None:
        """A loop appended a round: count its primitives, stream its answer decode."""
        progress.set_graph(graph)
        if on_text is not None:
            for node in answer_decode_nodes(graph):
                self._hook.streams[(query_id, node)] = on_text

    def forget_prefixes(self, query_id: str) -> None:
        """Drop the cached prompt prefixes a finished query left in the LLM engines (an
        engine's ``abort`` drops them), so running the same question again, with another
        scheme, computes its prompts anew instead of reusing this run's."""
        for engine in self.stack.engines.values():
            if engine.kind is EngineKind.LLM:
                engine.abort(query_id)

    def _collection_query(
        self, app: App, query: Query, collection: Collection
    ) -> tuple[Template, Query]:
        """The app's template without its indexing, and ``query`` reading ``collection``."""
        if query.documents:
            raise ValueError("pass documents or a collection, not both")
        if app.name not in self._indexed:
            self._indexed[app.name] = without_indexing(self._app(app)[1])
        indexed = self._indexed[app.name]
        for engine in indexed.embed_engines:
            collection.check_embedder(self.stack.engines[engine])
        [search_engine] = indexed.search_engines
        handle = collection.handle(self.stack.engines[search_engine])
        inputs = {**query.inputs, indexed.index_channel: handle}
        return indexed.template, dataclasses.replace(query, inputs=inputs)

    def _app(self, app: App | str) -> tuple[App, Template]:
        """The app and its template, built once per session. Graphs are cached by app
        name, so a name stands for one app: a second, different app under a name
        already asked is refused rather than served from the first one's cache."""
        resolved = get_app(app) if isinstance(app, str) else app
        if resolved.name not in self._apps:
            self._apps[resolved.name] = (resolved, resolved.template())
        known, template = self._apps[resolved.name]
        if resolved != known:
            raise ValueError(f"this session already runs a different app named {known.name!r}")
        return known, template


class _Progress:
    def __init__(self, graph: Graph, callback: OnProgress | None) -> None:
        self.callback = callback
        self.num_done = 0
        self.set_graph(graph)

    def set_graph(self, graph: Graph) -> None:
        """The graph grew (a loop's round): count the primitives it now has."""
        self.graph = graph
        self.total = sum(1 for n in graph if n.op not in INLINE_OPS)

    def done(self, name: str) -> None:
        if name not in self.graph:  # a baseline's helper node, outside the graph
            return
        node = self.graph.node(name)
        if self.callback is None or node.op in INLINE_OPS:
            return
        self.num_done += 1
        self.callback(node, self.num_done, self.total)


def answer_decode_nodes(graph: Graph, output_key: str = "answer") -> frozenset[str]:
    """The LLM decodes whose text becomes the ``output_key`` output (walking back
    through inline ops such as a CONDITION join)."""
    found: set[str] = set()
    frontier = [n.name for n in graph.nodes_with_op(Op.OUTPUT) if n.params.get("key") == output_key]
    seen: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in seen:
            continue
        seen.add(name)
        for edge in graph.in_edges(name):
            if edge.kind is not EdgeKind.DATA:
                continue
            parent = graph.node(edge.src)
            if parent.op in (Op.LLM_DECODE, Op.LLM_PARTIAL_DECODE):
                found.add(parent.name)
            elif parent.op in INLINE_OPS and parent.op is not Op.INPUT:
                frontier.append(parent.name)
            elif parent.op not in LLM_OPS:
                continue
    return frozenset(found)


def _answer(
    app: str,
    scheme: str,
    question: str,
    result: QueryResult,
    graph: Graph,
    honored: Graph,
    lower_s: float,
    optimize_s: float,
    is_cache_hit: bool,
) -> Answer:
    starts = [t.ready_s for t in result.timings.values()]
    query_start_s = min(starts) if starts else 0.0
    text = result.outputs.get("answer")
    hits = result.outputs.get("hits") or []
    return Answer(
        app=app,
        scheme=scheme,
        question=question,
        query_id=result.query_id,
        text=str(text).strip() if text is not None else "",
        passages=[h for h in hits if isinstance(h, Hit)],
        latency_s=result.latency_s,
        lower_s=lower_s,
        optimize_s=optimize_s,
        is_cache_hit=is_cache_hit,
        graph=graph,
        timing=timing_report(honored, result.timings, query_start_s),
        outputs=dict(result.outputs),
        honored=honored,
        decisions=dict(result.decisions),
    )
