"""What a simulation runs: per-query graphs and inputs for an app and a scheme.

A ``Workload`` makes the i-th query's (graph, inputs) from a seeded Generator. For an
app, each query is lowered from the app's sample query (``queries="sample"``) or from
generated query data (``queries="generated"``: a sample question and a random
non-empty subset of the app's sample documents), then rewritten per the scheme:

- ``primflow``: the default pass pipeline (the e-graph);
- ``parallel``: dependency pruning only (what an ``asyncio.gather`` baseline runs);
- ``sequential``: no passes (the lowered p-graph keeps the template's order).

With ``baselines="modules"`` the two baselines run as ``primflow bench`` runs them:
the unoptimized p-graph on the module-level executor (``primflow.baselines``), each
primitive one engine call in module order (``sequential``) or modules concurrently as
their inputs are ready (``parallel``), with no engine scheduler. With
``baselines="graph"`` (the default) they run their graphs on the runtime like primflow.
Explicit ``questions`` / ``documents`` / ``config_changes`` make the queries the
benchmark asks (``app.query(question, documents, **config_changes)``), cycled by index.

An app with a loop (``multi_hop_rag``, ``tool_agent``) grows each query's graph while
it runs, as on real engines: every query gets its own growth, the next round is lowered
when the fake LLM's constrained decision is known (its own pick from the prompt, or a
fixed ``llm_decisions`` choice) and optimized on its own with the scheme's passes
(cached by round shape); a module-level baseline runs the rounds one graph after
another (``baselines/rounds.py``).

Invariants: a workload is deterministic given the Generator; lowering and passes take
no virtual time (they run between events), and their results are cached by query data,
so a long simulation lowers each distinct query once (a looping query's first graph
too; its growth, which holds the query's rounds, is made anew for each query).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primflow.api.config import Query
from primflow.api.documents import Document
from primflow.api.dynamic import LoopGrowth
from primflow.api.lower import LoweredQuery, lower_query
from primflow.api.template import Template
from primflow.apps import App, resolve_app
from primflow.apps.samples import sample_questions
from primflow.engines.base import EngineKind
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph
from primflow.passes import (
    GraphCache,
    GraphPass,
    OptimizeReport,
    default_passes,
    optimize,
    prune_dependencies,
)
from primflow.sim.engines import engine_kinds

SCHEMES = ("primflow", "parallel", "sequential")
QUERY_SOURCES = ("sample", "generated")
BASELINE_MODES = ("graph", "modules")


@dataclass(frozen=True, slots=True)
class SimQuery:
    graph: Graph
    inputs: Mapping[str, Any]
    growth: LoopGrowth | None = None  # the query's loop, when its graph grows


@dataclass
class Workload:
    """``make_query(index, rng)`` gives each query; ``kinds`` names the engines used."""

    name: str
    kinds: dict[str, EngineKind]
    make_query: Callable[[int, np.random.Generator], SimQuery]
    description: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    # Scenario-specific profile changes by engine name, e.g. {"llm": {"max_batch_size": 1}}.
    profile_changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The LLM's concurrent calls when the config does not say (None: the default).
    max_num_llm_calls: int | None = None
    # None: the runtime runs the graphs; "sequential" / "parallel": the module-level
    # baseline executor does (baselines="modules").
    module_order: str | None = None

    def profiles(self, by_kind: Mapping[str, LatencyProfile]) -> dict[str, LatencyProfile]:
        """Each engine's profile: the preset's for its name, else for its kind, with this
        workload's changes."""
        return {
            name: by_kind.get(name, by_kind[str(kind)]).with_changes(
                **self.profile_changes.get(name, {})
            )
            for name, kind in self.kinds.items()
        }


def scheme_passes(scheme: str, profiles: Mapping[str, LatencyProfile]) -> list[GraphPass]:
    if scheme == "primflow":
        return default_passes(profiles)
    if scheme == "parallel":
        return [GraphPass("prune_dependencies", prune_dependencies)]
    if scheme == "sequential":
        return []
    raise ValueError(f"unknown scheme {scheme!r} (known: {', '.join(SCHEMES)})")


def app_workload(
    app_name: App | str,
    scheme: str,
    profiles_by_kind: Mapping[str, LatencyProfile],
    *,
    queries: str = "sample",
    baselines: str = "graph",
    questions: Sequence[str] | None = None,
    documents: Sequence[Document | str] | None = None,
    config_changes: Mapping[str, Any] | None = None,
) -> Workload:
    """The workload of ``app_name`` (a built-in app's name or an :class:`App` of your
    own) run under ``scheme`` (see module docstring)."""
    app = resolve_app(app_name)
    if queries not in QUERY_SOURCES:
        known = ", ".join(QUERY_SOURCES)
        raise ValueError(f"unknown query source {queries!r} (known: {known})")
    if baselines not in BASELINE_MODES:
        known = ", ".join(BASELINE_MODES)
        raise ValueError(f"unknown baselines mode {baselines!r} (known: {known})")
    template = app.template()
    sample = _base_query(app, documents, config_changes)
    sample_graph = lower_query(template, sample).graph
    kinds = engine_kinds(sample_graph)
    if app.has_loop:
        kinds = {**_loop_engine_kinds(template, sample), **kinds}
    profiles = {
        name: profiles_by_kind.get(name, profiles_by_kind[str(kind)])
        for name, kind in kinds.items()
    }
    is_module_level = baselines == "modules" and scheme != "primflow"
    passes = [] if is_module_level else scheme_passes(scheme, profiles)
    cache = GraphCache()
    lowered: dict[tuple[str, tuple[int, ...]], SimQuery] = {}
    if questions is not None:
        if not questions:
            raise ValueError("questions: give at least one question")
        pool = list(questions)
    else:
        pool = _sample_questions() if queries == "generated" else [sample.question]
    is_generated = queries == "generated" and questions is None

    def make_query(index: int, rng: np.random.Generator) -> SimQuery:
        if questions is not None:
            question = pool[index % len(pool)]
        else:
            question = pool[int(rng.integers(len(pool)))]
        picked = _pick_documents(len(sample.documents), rng) if is_generated else ()
        key = (question, picked)
        if key not in lowered or app.has_loop:
            query = _query_with(sample, question, picked)
            low = lower_query(template, query)
            graph = optimize(low.graph, passes=passes, cache=cache, template_id=app.name)[0]
            lowered[key] = (
                SimQuery(graph, low.inputs)
                if low.growth is None
                else _growing(graph, low, passes, cache, is_module_level)
            )
        return lowered[key]

    return Workload(
        name=f"{app.name}/{scheme}",
        kinds=kinds,
        make_query=make_query,
        description=app.description,
        info={"app": app.name, "scheme": scheme, "queries": queries, "baselines": baselines},
        module_order=scheme if is_module_level else None,
    )


def _loop_engine_kinds(template: Template, sample: Query) -> dict[str, EngineKind]:
    """The engines a looping query may use in any round: its loop unrolled to
    ``max_rounds`` once for every choice that continues it (an agent's tools)."""
    kinds: dict[str, EngineKind] = {}
    for choice in _continue_choices(template, sample):
        low = lower_query(template, sample)
        assert low.growth is not None
        low.growth.attach(low.graph)
        kinds.update(engine_kinds(low.growth.unroll([choice] * low.growth.loop.max_rounds)))
    return kinds


def _continue_choices(template: Template, sample: Query) -> list[str]:
    low = lower_query(template, sample)
    growth = low.growth
    assert growth is not None and growth.decision is not None
    graph = growth.attach(low.graph, keep_anchors=True)
    choices = [str(c) for c in graph.node(growth.decision.node).params.get("choices") or ()]
    going_on = [c for c in choices if c not in growth.loop.stop_on]
    return going_on or ["continue"]


def _growing(
    graph: Graph,
    low: LoweredQuery,
    passes: Sequence[GraphPass],
    cache: GraphCache,
    is_module_level: bool,
) -> SimQuery:
    """A looping query: its first graph with the loop's anchors resolved, and the
    growth that appends (and optimizes, with the scheme's passes) each later round."""
    growth = low.growth
    assert growth is not None
    if is_module_level:  # run_rounds attaches the p-graph itself
        return SimQuery(low.graph, low.inputs, growth)

    def optimize_round(round_graph: Graph, template_id: str) -> tuple[Graph, OptimizeReport]:
        return optimize(round_graph, passes=passes, cache=cache, template_id=template_id)

    first = growth.attach(graph, optimize_round, growth.template.name)
    return SimQuery(first, low.inputs, growth)


def _base_query(
    app: App,
    documents: Sequence[Document | str] | None,
    config_changes: Mapping[str, Any] | None,
) -> Query:
    """The app's sample query, or (documents or changes given) the query the benchmark
    asks: ``app.query(question, documents, **config_changes)``, no sample changes."""
    sample = app.sample_query()
    if documents is None and not config_changes:
        return sample
    chosen = sample.documents if documents is None else documents
    return app.query(sample.question, chosen, **dict(config_changes or {}))


def _sample_questions() -> list[str]:
    return [record["question"] for record in sample_questions()]


def _pick_documents(num_documents: int, rng: np.random.Generator) -> tuple[int, ...]:
    """Indices of a random non-empty subset of the documents (all when there is one)."""
    if num_documents == 0:
        return ()
    size = int(rng.integers(1, num_documents + 1))
    return tuple(sorted(int(i) for i in rng.choice(num_documents, size=size, replace=False)))


def _query_with(sample: Query, question: str, picked: tuple[int, ...]) -> Query:
    documents = tuple(sample.documents[i] for i in picked) if picked else sample.documents
    return dataclasses.replace(sample, question=question, documents=documents)
