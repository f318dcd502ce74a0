"""Simulated engines: the fakes of ``primflow.testing.fakes`` with preset profiles.

Owns how a simulation's engines are built: one fake per instance of each named engine,
its profile taken from a hardware preset by engine kind. Invariants:

- Non-LLM engines run one batch at a time per instance; a batch takes the profile's
  ``latency_s(items, tokens)``, so batching amortizes the fixed cost.
- The LLM runs up to ``max_num_calls`` batches at once (continuous batching). Unlike
  the bare fake, it slows down with load: a request that starts while ``n`` others run
  takes ``(1 + llm_contention * n)`` times its profile latency, a first-order model of
  a decode step growing with batch size. ``llm_contention=0`` gives the bare fake.
  With ``llm_model="steps"`` the LLM is ``StepSimLLM`` instead (step_llm.py): its
  phases share engine steps costed by the profile's step-cost model.
- A user's function (``Op.FUNCTION``) takes its engine profile's latency in virtual
  time and then really runs (it is the user's code, cheap by assumption), so its
  outputs are true; async functions are not simulated.
- A web search instance runs ``max_num_web_search_calls`` batches at once (an API
  serves many callers; 1 by default, one batch at a time like the other engines).
- The embedder is charged per token of its texts too, and web-search snippets can be
  given a real length (retrieval.py).
- With ``shared_cores`` the LLM, embedder and reranker share that many cores
  (cores.py): two busy at once each run at half speed, as on this machine.
- The instances of a vector index share one store (a database server's), so a search
  finds what any instance ingested; each instance still runs its own batches.
- Everything sleeps with ``asyncio.sleep``: on the virtual loop no real time passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from primflow.engines.base import OPS_BY_KIND, Engine, EngineError, EngineKind, EngineRequest
from primflow.engines.function.call import Outputs, call_sync, function_of, settings_of
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import Graph
from primflow.sim.cores import SharedCores
from primflow.sim.retrieval import SimEmbedder, SimWebSearch
from primflow.sim.step_llm import StepSimLLM, has_step_costs
from primflow.testing.fake_engine import FakeEngine
from primflow.testing.fake_llm import FakeLLM
from primflow.testing.fakes import FAKES_BY_KIND, FakeVectorIndex

DEFAULT_LLM_CONTENTION = 0.02
DEFAULT_MAX_NUM_LLM_CALLS = 32
# How the simulated LLM spends time: per call with a load slowdown, or in engine steps.
LLM_MODELS = ("calls", "steps")


class SimLLM(FakeLLM):
    """A fake LLM whose per-request latency grows with the requests already running."""

    def __init__(
        self,
        name: str,
        profile: LatencyProfile | None = None,
        *,
        llm_contention: float = DEFAULT_LLM_CONTENTION,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, profile, **kwargs)
        self.llm_contention = llm_contention

    def request_latency_s(self, request: EngineRequest) -> float:
        # FakeLLM counts this request as running before asking for its latency.
        num_others = max(0, self._num_running - 1)
        slowdown = 1.0 + self.llm_contention * num_others
        return slowdown * super().request_latency_s(request)


class SimFunction(FakeEngine):
    """A function engine in virtual time: the profile's latency, then the real call."""

    kind = EngineKind.FUNCTION

    def compute(self, request: EngineRequest) -> Outputs:
        ref = function_of(request.params)
        if ref.is_async:
            raise EngineError(self.name, request.node, f"{ref} is async: not simulated")
        return call_sync(ref, request.inputs, settings_of(request.params))


def engine_kinds(graph: Graph) -> dict[str, EngineKind]:
    """The kind of each engine a graph names, from the ops its nodes run there."""
    kinds: dict[str, EngineKind] = {}
    for node in graph:
        if node.engine is None:
            continue
        kind = next((k for k, ops in OPS_BY_KIND.items() if node.op in ops), None)
        if kind is None:
            raise ValueError(f"node {node.name!r}: no engine kind runs {node.op}")
        known = kinds.setdefault(node.engine, kind)
        if known is not kind:
            raise ValueError(
                f"engine {node.engine!r} runs both {known} and {kind} ops (node {node.name!r})"
            )
    return kinds


def check_instances(instances: Mapping[str, int], kinds: Mapping[str, EngineKind]) -> None:
    """Every named engine exists and gets at least one instance."""
    for name, count in instances.items():
        if name not in kinds:
            known = ", ".join(sorted(kinds))
            raise ValueError(f"--instances names engine {name!r}, not one of: {known}")
        if count < 1:
            raise ValueError(f"engine {name!r} needs at least 1 instance, got {count}")


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How the simulated engines behave beyond their profiles (see module docstring)."""

    llm_contention: float = DEFAULT_LLM_CONTENTION
    max_num_llm_calls: int = DEFAULT_MAX_NUM_LLM_CALLS
    llm_model: str = "calls"
    max_num_web_search_calls: int = 1
    web_snippet_chars: int = 0
    # None: each engine on its own device; else the compute-bound engines (LLM,
    # embedder, reranker) share this many cores, each able to use all of them.
    shared_cores: float | None = None


# Engines that compete for a host's cores; the others wait on I/O or take microseconds.
CORE_BOUND_KINDS = frozenset({EngineKind.LLM, EngineKind.EMBEDDER, EngineKind.RERANKER})


def build_engines(
    kinds: Mapping[str, EngineKind],
    profiles: Mapping[str, LatencyProfile],
    instances: Mapping[str, int] | None = None,
    *,
    llm_contention: float = DEFAULT_LLM_CONTENTION,
    max_num_llm_calls: int = DEFAULT_MAX_NUM_LLM_CALLS,
    llm_model: str = "calls",
    max_num_web_search_calls: int = 1,
    web_snippet_chars: int = 0,
    shared_cores: float | None = None,
) -> dict[str, list[Engine]]:
    """Fake instances per named engine; ``profiles`` is keyed by engine name."""
    counts = dict(instances or {})
    check_instances(counts, kinds)
    check_llm_model(llm_model, kinds, profiles)
    options = EngineOptions(
        llm_contention,
        max_num_llm_calls,
        llm_model,
        max_num_web_search_calls,
        web_snippet_chars,
        shared_cores,
    )
    cores = None if shared_cores is None else SharedCores(shared_cores)
    engines: dict[str, list[Engine]] = {}
    for name, kind in kinds.items():
        profile = profiles[name]
        made = [_make(name, kind, profile, options) for _ in range(counts.get(name, 1))]
        if cores is not None and kind in CORE_BOUND_KINDS:
            for engine in made:
                engine.delay = cores.spend
        if kind is EngineKind.VECTOR_INDEX:
            _share_collections(made)
        engines[name] = list(made)
    return engines


def check_llm_model(
    llm_model: str, kinds: Mapping[str, EngineKind], profiles: Mapping[str, LatencyProfile]
) -> None:
    """A known LLM model; ``steps`` needs every LLM engine's profile to have step costs."""
    if llm_model not in LLM_MODELS:
        raise ValueError(f"unknown LLM model {llm_model!r} (known: {', '.join(LLM_MODELS)})")
    if llm_model != "steps":
        return
    for name, kind in kinds.items():
        if kind is EngineKind.LLM and not has_step_costs(profiles[name]):
            raise ValueError(
                f"LLM model 'steps': engine {name!r} has no step costs in its profile "
                "(step_base_s, step_per_seq_s, step_per_token_s are 0); profile it with "
                "`primflow profile --engines llm` or use the 'calls' model"
            )


def _share_collections(instances: Sequence[FakeEngine]) -> None:
    """Vector-index instances read one store (a shared database, like pgvector's):
    a query's chunks ingested at one instance are found by a search at another."""
    first = instances[0]
    assert isinstance(first, FakeVectorIndex)
    for instance in instances[1:]:
        assert isinstance(instance, FakeVectorIndex)
        instance.collections = first.collections
        instance.share_query_collections(first)


def _make(
    name: str, kind: EngineKind, profile: LatencyProfile, options: EngineOptions
) -> FakeEngine:
    if kind is EngineKind.LLM and options.llm_model == "steps":
        return StepSimLLM(name, profile, max_num_calls=options.max_num_llm_calls)
    if kind is EngineKind.LLM:
        return SimLLM(
            name,
            profile,
            llm_contention=options.llm_contention,
            max_num_calls=options.max_num_llm_calls,
        )
    if kind is EngineKind.FUNCTION:
        return SimFunction(name, profile)
    if kind is EngineKind.EMBEDDER:
        return SimEmbedder(name, profile)
    if kind is EngineKind.WEB_SEARCH:
        return SimWebSearch(
            name,
            profile,
            max_concurrent_batches=options.max_num_web_search_calls,
            snippet_chars=options.web_snippet_chars,
        )
    return FAKES_BY_KIND[kind](name, profile)
