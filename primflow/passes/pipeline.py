"""The optimization pipeline: turns a per-query p-graph into the e-graph the runtime runs.

Invariants:

- One ordered default pipeline (prune -> decompose -> split prefill -> pipeline decode),
  applied round after round until a whole round changes nothing (or ``max_rounds``).
- A pass is a pure function ``Graph -> Graph``: it never mutates its argument and may
  return it as is when nothing applies (copying big graphs is the main cost here).
  A pass that raises is never skipped:
  :class:`PassError` names it and the passes that ran before it.
- With ``lint_each`` the graph is linted after every pass, every OUTPUT must keep
  depending on the same INPUTs and provenance must stay consistent
  (:mod:`primflow.graph.lint_provenance`); the first pass that breaks a rule is named.
- Optimized graphs are cached per (template id, shape key). The default shape key is
  the whole structure of the graph, so a hit returns exactly what the passes would; a
  caller-supplied key must cover everything the passes read (ops, port sizes, params).
- Every run reports its time per pass and whether it hit the cache.

Custom passes: build a list from :func:`default_passes` and insert a
``GraphPass("name", fn)`` anywhere, then pass it as ``passes=``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph
from primflow.graph.lint import check_same_dependencies, lint
from primflow.graph.lint_provenance import check_provenance
from primflow.graph.printers import jsonable
from primflow.passes.decompose_stages import PASS_NAME as DECOMPOSE_STAGES
from primflow.passes.decompose_stages import decompose_stages
from primflow.passes.pipeline_decode import PASS_NAME as PIPELINE_DECODE
from primflow.passes.pipeline_decode import pipeline_decode
from primflow.passes.prune_dependencies import PASS_NAME as PRUNE_DEPENDENCIES
from primflow.passes.prune_dependencies import prune_dependencies
from primflow.passes.split_prefill import PASS_NAME as SPLIT_PREFILL
from primflow.passes.split_prefill import split_prefill

DEFAULT_MAX_ROUNDS = 8

PassFn = Callable[[Graph], Graph]
Profiles = Mapping[str, LatencyProfile]


@dataclass(frozen=True, slots=True)
class GraphPass:
    """A named pass. ``run`` must not change its argument."""

    name: str
    run: PassFn


class PassError(RuntimeError):
    """A pass raised or produced a bad graph; names the pass and those run before it."""

    def __init__(self, pass_name: str, passes_before: Sequence[str], reason: str) -> None:
        before = ", ".join(passes_before) or "none"
        super().__init__(f"pass {pass_name!r} failed (passes run before it: {before}): {reason}")
        self.pass_name = pass_name
        self.passes_before = list(passes_before)
        self.reason = reason


@dataclass(slots=True)
class OptimizeReport:
    """What one :meth:`Optimizer.optimize` call did and how long it took."""

    is_cache_hit: bool = False
    num_rounds: int = 0
    is_fixpoint: bool = True
    pass_s: dict[str, float] = field(default_factory=dict)  # summed over rounds
    changed_by: list[str] = field(default_factory=list)  # pass names, one per change
    total_s: float = 0.0

    def summary(self) -> str:
        """One line for logs and the CLI, e.g. ``optimized in 2.10 ms, 2 rounds (...)``."""
        if self.is_cache_hit:
            return f"optimized graph from cache in {self.total_s * 1e3:.2f} ms"
        per_pass = ", ".join(f"{name} {s * 1e3:.2f} ms" for name, s in self.pass_s.items())
        settled = "" if self.is_fixpoint else ", round limit reached"
        return (
            f"optimized in {self.total_s * 1e3:.2f} ms, {self.num_rounds} rounds{settled} "
            f"({per_pass}); changed by: {', '.join(dict.fromkeys(self.changed_by)) or 'none'}"
        )


def default_passes(profiles: Profiles | None = None) -> list[GraphPass]:
    """The default pipeline, in order; ``profiles`` maps engine name -> latency profile."""
    known: Profiles = profiles or {}
    return [
        GraphPass(PRUNE_DEPENDENCIES, prune_dependencies),
        GraphPass(DECOMPOSE_STAGES, lambda g: decompose_stages(g, known)),
        GraphPass(SPLIT_PREFILL, lambda g: split_prefill(g, known)),
        GraphPass(PIPELINE_DECODE, pipeline_decode),
    ]


def graph_shape_key(graph: Graph) -> Hashable:
    """A hashable signature of everything a pass may read: nodes (op, engine, ports with
    sizes, params) and edges. Graphs with equal keys optimize to equal graphs."""
    nodes = tuple(
        (
            n.name,
            str(n.op),
            n.engine,
            tuple((p.name, str(p.type), p.num_items, p.is_optional) for p in n.inputs),
            tuple((p.name, str(p.type), p.num_items, p.is_optional) for p in n.outputs),
            repr(jsonable(n.params)),
            n.is_batchable,
            n.is_splittable,
            n.origin,
            n.provenance,
        )
        for n in graph
    )
    edges = tuple(
        sorted(
            (e.src, e.src_port, e.dst, e.dst_port, str(e.kind), e.select or (-1, -1))
            for e in graph.edges
        )
    )
    return (nodes, edges)


class GraphCache:
    """A small thread-safe LRU of optimized graphs keyed by (template id, shape key)."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self.num_hits = 0
        self.num_misses = 0
        self._entries: OrderedDict[tuple[str, Hashable], Graph] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, Hashable]) -> Graph | None:
        with self._lock:
            graph = self._entries.get(key)
            if graph is None:
                self.num_misses += 1
                return None
            self.num_hits += 1
            self._entries.move_to_end(key)
            return graph.copy()

    def put(self, key: tuple[str, Hashable], graph: Graph) -> None:
        with self._lock:
            self._entries[key] = graph.copy()
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class Optimizer:
    """Runs a pass list to a fixpoint, with optional lint and a cache."""

    def __init__(
        self,
        profiles: Profiles | None = None,
        passes: Sequence[GraphPass] | None = None,
        *,
        cache: GraphCache | None = None,
        lint_each: bool = False,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
    ) -> None:
        self.passes = list(passes) if passes is not None else default_passes(profiles)
        self.cache = cache
        self.lint_each = lint_each
        self.max_rounds = max_rounds

    def optimize(
        self, graph: Graph, *, template_id: str = "", shape_key: Hashable | None = None
    ) -> tuple[Graph, OptimizeReport]:
        """The optimized copy of ``graph`` and a report; ``graph`` is left unchanged."""
        started_s = time.perf_counter()
        report = OptimizeReport()
        key = (template_id, graph_shape_key(graph) if shape_key is None else shape_key)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            report.is_cache_hit = True
            report.total_s = time.perf_counter() - started_s
            return cached, report
        result = self._run_to_fixpoint(graph, report)
        if result is graph:
            result = graph.copy()  # the caller owns what it gets back
        if self.cache is not None:
            self.cache.put(key, result)
        report.total_s = time.perf_counter() - started_s
        return result, report

    def _run_to_fixpoint(self, graph: Graph, report: OptimizeReport) -> Graph:
        ran: list[str] = []
        report.is_fixpoint = False
        for _ in range(self.max_rounds):
            report.num_rounds += 1
            is_changed = False
            for graph_pass in self.passes:
                new_graph = self._run_one(graph_pass, graph, ran, report)
                ran.append(graph_pass.name)
                if new_graph is not graph and new_graph != graph:
                    is_changed = True
                    report.changed_by.append(graph_pass.name)
                graph = new_graph
            if not is_changed:
                report.is_fixpoint = True
                break
        return graph

    def _run_one(
        self, graph_pass: GraphPass, graph: Graph, ran: list[str], report: OptimizeReport
    ) -> Graph:
        started_s = time.perf_counter()
        try:
            new_graph = graph_pass.run(graph)
        except Exception as exc:
            raise PassError(graph_pass.name, ran, f"{type(exc).__name__}: {exc}") from exc
        finally:
            elapsed_s = time.perf_counter() - started_s
            report.pass_s[graph_pass.name] = report.pass_s.get(graph_pass.name, 0.0) + elapsed_s
        if self.lint_each:
            try:
                lint(new_graph)
                check_same_dependencies(graph, new_graph)
                check_provenance(graph, new_graph)
            except Exception as exc:
                raise PassError(graph_pass.name, ran, f"produced a bad graph: {exc}") from exc
        return new_graph


def optimize(
    graph: Graph,
    profiles: Profiles | None = None,
    *,
    passes: Sequence[GraphPass] | None = None,
    cache: GraphCache | None = None,
    lint_each: bool = False,
    template_id: str = "",
    shape_key: Hashable | None = None,
) -> tuple[Graph, OptimizeReport]:
    """Optimize ``graph`` with the default (or given) passes; returns (e-graph, report).

    The default passes prune ORDER edges, split big batches into stages, split prefills
    and pipeline decodes; ``lint_each`` checks the graph after every pass.

    Examples:
        >>> from primflow import get_app, lower, optimize
        >>> app = get_app("naive_rag")
        >>> graph = lower(app.template(), app.query("How much leave?", ["25 days of leave."]))
        >>> optimized, report = optimize(graph, lint_each=True)
        >>> report.changed_by[0], optimized.parents("embed_question")
        ('prune_dependencies', ['input.question_list'])
    """
    optimizer = Optimizer(profiles, passes, cache=cache, lint_each=lint_each)
    return optimizer.optimize(graph, template_id=template_id, shape_key=shape_key)
