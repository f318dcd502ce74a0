"""End-to-end benchmark: primflow against the module-level baselines on the same engines.

For each workload (document sizing) and placement, one engine stack is built and every
scheme runs on it *side by side*: single queries interleave the schemes question by
question (the scheme going first rotates, so noise hits all of them alike; each query's
cached prompts are dropped after it, so no scheme reuses another's prompts of the same
question), then Poisson-arrival runs per request rate (see ``_AppRun.load``). Per query
it records latency, the critical-path lower bound from uncontended latencies (the same
question's sequential run, see ``solo_bound``) and the ratio, lowering and optimization
time; per e-graph the scheduling overhead (the same e-graph run on zero-latency fake
engines: what the runtime itself costs).

Ablations (``BenchConfig.ablations``, names from ``primflow.baselines.ABLATIONS``) run as
extra schemes ``primflow/<ablation>``, each on its own :class:`Session` over the *same*
stack (the same engine instances), in the same per-question rotation as the other
schemes, with the same prompt forgetting and the same sequential reference; under load
only with ``ablations_under_load`` (each multiplies the Poisson runtime).

Answers have a fixed length by default (``ignore_eos``: every query asks for exactly
``max_tokens`` answer tokens), so a scheme's latency does not depend on where the model
happens to stop; ``ignore_eos=False`` keeps natural lengths.
Seeded: arrivals come from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from primflow.api.documents import Document, load_documents
from primflow.apps import App, resolve_app
from primflow.apps.samples import sample_questions, samples_dir
from primflow.baselines import ABLATIONS
from primflow.runtime import Runtime
from primflow.session.session import Answer, Session
from primflow.session.stack import EngineFactory, EngineStack, engines_for_apps
from primflow.sim.stats import LatencyStats

# Document sizing of the two workloads (on samples/docs: 282 and 92 chunks).
WORKLOADS: dict[str, dict[str, int]] = {
    "cold": {"chunk_size": 120, "chunk_overlap": 10},  # each query indexes ~300 chunks
    "balanced": {"chunk_size": 350, "chunk_overlap": 30},  # <= 128 chunks
}

ABLATION_PREFIX = "primflow/"  # an ablation's scheme name: primflow/<ablation>


@dataclass
class BenchConfig:
    apps: Sequence[App | str]  # built-in apps' names or apps of your own (a spec's)
    schemes: Sequence[str] = ("primflow", "sequential", "parallel")
    workloads: Sequence[str] = ("balanced", "cold")
    placements: Sequence[str] = ("shared", "dedicated")
    rates_qps: Sequence[float] = (0.25, 0.5, 1.0, 2.0)  # empty: no Poisson runs
    num_questions: int = 10
    num_load_queries: int = 12
    max_tokens: int = 32
    seed: int = 0
    docs: Path | None = None  # None: samples/docs
    num_cores: int | None = None  # None: all the machine's cores
    ablations: Sequence[str] = ()  # names from ABLATIONS, run as schemes primflow/<name>
    is_ablations_under_load: bool = False  # also run them in the Poisson runs
    ignore_eos: bool = True  # fixed-length answers: exactly max_tokens each
    questions: Sequence[str] | None = None  # None: each app's sample question set

    def __post_init__(self) -> None:
        unknown = [a for a in self.ablations if a not in ABLATIONS]
        if unknown:
            raise ValueError(
                f"unknown ablation {', '.join(unknown)}; known: {', '.join(ABLATIONS)}"
            )

    def ablation_schemes(self) -> list[str]:
        return [ablation_scheme(a) for a in self.ablations]

    def query_changes(self, workload: str) -> dict[str, Any]:
        """The config changes every query of ``workload`` runs with."""
        changes: dict[str, Any] = {**WORKLOADS[workload], "max_tokens": self.max_tokens}
        if self.ignore_eos:
            changes["ignore_eos"] = True
        return changes


def ablation_scheme(ablation: str) -> str:
    return f"{ABLATION_PREFIX}{ablation}"


def ablation_of(scheme: str) -> str | None:
    """The ablation a scheme name runs (None for primflow and the baselines)."""
    return scheme.removeprefix(ABLATION_PREFIX) if scheme.startswith(ABLATION_PREFIX) else None


@dataclass
class Case:
    """One (workload, placement, app, scheme): its single-query answers and load runs."""

    workload: str
    placement: str
    app: str
    scheme: str
    single: list[dict[str, Any]] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)

    def single_stats(self) -> dict[str, float]:
        latencies = [q["latency_s"] for q in self.single]
        bounds = [q["bound_s"] for q in self.single if q["bound_s"] is not None]
        ratios = [q["bound_ratio"] for q in self.single if q["bound_ratio"] is not None]
        overheads = [q["overhead_fraction"] for q in self.single if "overhead_fraction" in q]
        stats = LatencyStats.from_latencies(latencies)
        return {
            "mean_s": stats.mean_s,
            "p50_s": stats.p50_s,
            "p95_s": stats.p95_s,
            "mean_bound_s": float(np.mean(bounds)) if bounds else float("nan"),
            "mean_bound_ratio": float(np.mean(ratios)) if ratios else float("nan"),
            "mean_overhead_fraction": float(np.mean(overheads)) if overheads else float("nan"),
            "mean_llm_fraction": float(np.mean([q["llm_fraction"] for q in self.single])),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "placement": self.placement,
            "app": self.app,
            "scheme": self.scheme,
            "single": self.single_stats() if self.single else {},
            "single_queries": self.single,
            "load": self.load,
        }


def questions_for(
    num_questions: int, app: App | str = "naive_rag", questions: Sequence[str] | None = None
) -> list[str]:
    """``num_questions`` questions from ``questions`` (None: ``app``'s sample question
    set), cycling if there are fewer."""
    if questions is None:
        records = sample_questions(resolve_app(app).questions_file)
        questions = [record["question"] for record in records]
    if not questions:
        raise ValueError("the benchmark needs at least one question")
    return [questions[i % len(questions)] for i in range(num_questions)]


async def run_benchmark(
    config: BenchConfig,
    factory: EngineFactory,
    log: Callable[[str], None] = print,
) -> list[Case]:
    documents = load_documents(config.docs or samples_dir() / "docs")
    schemes = [*config.schemes, *config.ablation_schemes()]
    apps = [resolve_app(app) for app in config.apps]
    cases: list[Case] = []
    for workload in config.workloads:
        for placement in config.placements:
            stack = EngineStack(
                engines_for_apps(apps),
                factory,
                placement=placement,
                num_cores=config.num_cores,
            )
            async with stack, contextlib.AsyncExitStack() as opened:
                # primflow and the baselines share one session (as before); every
                # ablation gets its own, all on the same stack.
                main = await opened.enter_async_context(_session(stack, "full"))
                ablations = {
                    ablation_scheme(a): await opened.enter_async_context(_session(stack, a))
                    for a in config.ablations
                }
                for app in apps:
                    changes = config.query_changes(workload)
                    run = _AppRun(main, ablations, app, documents, changes, log)
                    questions = questions_for(config.num_questions, app, config.questions)
                    found = await run.single(workload, placement, schemes, questions)
                    if config.rates_qps:
                        loaded = [
                            c
                            for c in found
                            if config.is_ablations_under_load or ablation_of(c.scheme) is None
                        ]
                        load_questions = questions_for(
                            config.num_load_queries, app, config.questions
                        )
                        await run.load(loaded, load_questions, config)
                    cases.extend(found)
    return cases


def _session(stack: EngineStack, ablation: str) -> Session:
    """A session with ``ablation`` on ``stack`` (query ids are unique per stack)."""
    return Session(stack, ablation=ablation)


class _AppRun:
    def __init__(
        self,
        main: Session,
        ablations: dict[str, Session],
        app: App,
        documents: list[Document],
        changes: dict[str, Any],
        log: Callable[[str], None],
    ) -> None:
        self.main = main  # primflow (full setting) and the baselines
        self.ablations = ablations  # scheme primflow/<ablation> -> its session
        self.app = app
        self.documents = documents
        self.changes = changes
        self.log = log
        self._sched_s: dict[int, float] = {}

    async def ask(self, question: str, scheme: str) -> Answer:
        """One question; its prompts leave nothing in the LLM prefix caches, so the next
        scheme on the same question cannot reuse them (only shared prefixes of queries
        running at the same time are reused, as in real serving)."""
        session = self.ablations.get(scheme, self.main)
        answer = await session.ask(
            self.app,
            question,
            self.documents,
            scheme="primflow" if ablation_of(scheme) is not None else scheme,
            config_changes=self.changes,
        )
        session.forget_prefixes(answer.query_id)
        return answer

    async def single(
        self, workload: str, placement: str, schemes: Sequence[str], questions: list[str]
    ) -> list[Case]:
        cases = {s: Case(workload, placement, self.app.name, s) for s in schemes}
        width = max(map(len, schemes))
        for scheme in schemes:  # warm-up: model pages, prefix cache of the instructions
            await self.ask(questions[-1], scheme)
        for i, question in enumerate(questions):
            # Each scheme goes first equally often (noise and warm pages hit all alike).
            rotated = [*schemes[i % len(schemes) :], *schemes[: i % len(schemes)]]
            answers = {scheme: await self.ask(question, scheme) for scheme in rotated}
            # The uncontended reference of the bound: this question's sequential run.
            reference = answers.get("sequential") or await self.ask(question, "sequential")
            for scheme, answer in answers.items():
                answer.set_reference(reference)
                cases[scheme].single.append(await self._record(answer, scheme))
                self.log(
                    f"[{workload}/{placement}] {self.app.name} {scheme:<{width}} q{i}: "
                    f"{answer.latency_s:.2f}s (bound {answer.bound_s or float('nan'):.2f}s)"
                )
        return list(cases.values())

    async def _record(self, answer: Answer, scheme: str) -> dict[str, Any]:
        record = answer.to_json()
        record.pop("primitives")
        record["scheme"] = scheme
        record["query_id"] = answer.query_id
        on_bound_path = set(answer.solo.path if answer.solo is not None else ())
        record["timeline"] = [
            {
                **{k: p[k] for k in ("node", "engine", "start_s", "end_s", "critical")},
                "on_bound_path": p["node"] in on_bound_path,
            }
            for p in answer.timing.to_dicts()
        ]
        engine_s = sum(p.service_s for p in answer.timing.primitives)
        llm_s = sum(p.service_s for p in answer.timing.primitives if p.op.startswith("llm"))
        record["llm_fraction"] = llm_s / engine_s if engine_s else 0.0
        if scheme == "primflow":  # the runtime's overhead: the full setting's only
            sched_s = await self._scheduling_s(answer)
            record["scheduling_s"] = sched_s
            record["overhead_fraction"] = (answer.optimize_s + sched_s) / answer.latency_s
        return record

    async def _scheduling_s(self, answer: Answer) -> float:
        """The runtime's own time for this e-graph: the same graph, zero-latency fakes."""
        key = len(answer.graph)
        if key not in self._sched_s:
            self._sched_s[key] = await scheduling_overhead_s(
                self.app, answer, self.documents, self.changes
            )
        return self._sched_s[key]

    async def load(self, cases: list[Case], questions: list[str], config: BenchConfig) -> None:
        """Poisson runs at each rate, lowest first, every scheme side by side; stops after
        the first rate where sequential's p95 exceeds 3x its single-query mean (the
        loaded point the targets read), so overloaded rates do not run for nothing."""
        sequential = next((c for c in cases if c.scheme == "sequential"), None)
        for number, rate in enumerate(config.rates_qps):
            rng = np.random.default_rng(config.seed)
            gaps = rng.exponential(1.0 / rate, size=config.num_load_queries)
            arrivals = [float(t) for t in np.cumsum(gaps) - gaps[0]]
            for case in [*cases[number % len(cases) :], *cases[: number % len(cases)]]:
                stats = await self._open_loop(case.scheme, questions, arrivals)
                self.log(
                    f"  load {self.app.name} {case.scheme:<10} {rate:g} q/s: {stats.summary()}"
                )
                case.load.append({"rate_qps": rate, **stats.to_dict()})
            if sequential is not None and is_loaded(sequential):
                self.log(f"  sequential p95 > 3x its single query at {rate:g} q/s: done")
                return

    async def _open_loop(
        self, scheme: str, questions: list[str], arrivals_s: list[float]
    ) -> LatencyStats:
        """Submit question i at ``arrivals_s[i]`` whatever is still running."""
        started_s = time.perf_counter()
        latencies: list[float] = []
        failures: list[BaseException] = []

        async def one(at_s: float, question: str) -> None:
            await asyncio.sleep(max(0.0, at_s - (time.perf_counter() - started_s)))
            try:
                latencies.append((await self.ask(question, scheme)).latency_s)
            except Exception as exc:  # counted, never averaged in
                failures.append(exc)

        await asyncio.gather(
            *(one(at_s, questions[i % len(questions)]) for i, at_s in enumerate(arrivals_s))
        )
        span_s = time.perf_counter() - started_s
        return LatencyStats.from_latencies(latencies, num_failed=len(failures), span_s=span_s)


def is_loaded(sequential: Case) -> bool:
    """Whether sequential's last load run has p95 > 3x its single-query mean."""
    if not sequential.single or not sequential.load:
        return False
    return bool(sequential.load[-1]["p95_s"] > 3 * sequential.single_stats()["mean_s"])


async def scheduling_overhead_s(
    app: App | str, answer: Answer, documents: list[Document], changes: dict[str, Any]
) -> float:
    """Median latency of ``answer.graph`` on zero-latency fake engines (5 runs)."""
    from primflow.api.lower import lower_query
    from primflow.session.factories import fake_factory

    app = resolve_app(app)
    query = app.query(answer.question, documents, **changes)
    inputs = lower_query(app.template(), query).inputs
    stack = EngineStack(engines_for_apps([app]), fake_factory(latency_scale=0.0))
    latencies = []
    async with Runtime(stack.borrowed(), profiles=stack.profiles) as runtime:
        for _ in range(5):
            started = time.perf_counter()
            await runtime.run(answer.graph, inputs)
            latencies.append(time.perf_counter() - started)
    return float(np.median(latencies))
