"""Simulator calibration: the benchmark's workloads in the simulator and for real.

`python bench/bench_sim_calibration.py [--apps ...] [--profiles FILE] [--sim-only]`

One run does both sides on this machine:

1. Profiles: ``--profiles FILE`` (saved by `primflow profile`), or measured here first
   with the profiler `primflow profile` runs (saved next to the JSON as
   ``<name>_profiles.json``).
2. Real: ``primflow bench``'s harness (``run_benchmark``) on the embedded engines, one
   workload and placement: per app, ``--num-questions`` single queries per scheme and
   one Poisson run of ``--num-load-queries`` queries at ``--rate``.
3. Simulated: the same queries (same questions, documents, config changes, arrival
   times) on simulated engines whose latency models are fitted from the profiles
   (``SimConfig.profiles``), the LLM in engine steps (``llm_model="steps"``), the
   baselines on the module-level executor (``baselines="modules"``), as the benchmark
   runs them, and web-search snippets as long as the embedded corpus's (samples/web).
   The passes see the profiles the real session's passes see (the defaults).

Reports per app and scheme the mean latency of both sides and the error
(simulated / real - 1), single query and under load; one result line; JSON at
``docs/bench/<name>.json``. ``--sim-only`` re-simulates against the real side of that
JSON (for working on the models without rerunning the engines), on its profiles or on
``--profiles FILE``. Seeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from primflow.api.documents import load_documents
from primflow.apps.samples import samples_dir
from primflow.bench.benchmark import WORKLOADS, BenchConfig, questions_for, run_benchmark
from primflow.engines.profile import DEFAULT_PROFILES, LatencyProfile, load_profiles, save_profiles
from primflow.session.stack import engines_for_apps
from primflow.sim.simulator import QueryRecord, SimConfig, simulate
from primflow.sim.workload import app_workload

OUT_DIR = Path("docs/bench")


def main() -> int:
    args = _parse()
    out = OUT_DIR / f"{args.name}.json"
    config = BenchConfig(
        apps=args.apps.split(","),
        schemes=args.schemes.split(","),
        workloads=[args.workload],
        placements=[args.placement],
        rates_qps=[args.rate],
        num_questions=args.num_questions,
        num_load_queries=args.num_load_queries,
        max_tokens=args.max_tokens,
        seed=args.seed,
    )
    if args.sim_only:
        saved = json.loads(out.read_text())
        real = saved["real"]
        measured = _profiles_from(saved.get("measured_profiles", saved["profiles"]))
        load_average = saved.get("load_average", [])
    else:
        load_average = [os.getloadavg()[0]]
        measured = _measured_profiles(args, config)
        load_average.append(os.getloadavg()[0])
        real = asyncio.run(_run_real(config, args.fake))
        load_average.append(os.getloadavg()[0])
    # --sim-only --profiles FILE: re-simulate the same real runs on other profiles.
    profiles = load_profiles(args.profiles) if args.sim_only and args.profiles else measured
    started_s = time.perf_counter()
    shared_cores = float(os.cpu_count() or 1) if args.cores_model == "shared" else None
    rows = [_compare(row, config, profiles, args.llm_model, shared_cores) for row in real]
    # The machine's speed during the real runs against the profiles': one factor, from
    # the sequential single queries (medians), applied to every profile; then the rest
    # (primflow, parallel, load) is simulated again on the scaled profiles.
    scale = _machine_scale(rows)
    scaled = {name: _scaled(p, scale) for name, p in profiles.items()}
    rows_scaled = [_compare(row, config, scaled, args.llm_model, shared_cores) for row in real]
    data = {
        "command": " ".join(["python bench/bench_sim_calibration.py", *sys.argv[1:]]),
        "settings": {**vars(args), "config_changes": config.query_changes(args.workload)},
        "measured_profiles": {name: p.to_dict() for name, p in measured.items()},
        "profiles": {name: p.to_dict() for name, p in profiles.items()},
        # 1-minute load average before profiling, after it, after the real runs: other
        # work on the machine inflates the real side and the profiles alike.
        "load_average": [round(x, 2) for x in load_average],
        "machine_scale": round(scale, 4),
        "real": real,
        "rows": rows,
        "rows_scaled": rows_scaled,
        "sim_wall_s": round(time.perf_counter() - started_s, 3),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(_result_line(rows, rows_scaled, scale))
    return 0


LATENCY_FIELDS = (
    "base_s",
    "per_item_s",
    "per_token_s",
    "per_output_token_s",
    "step_base_s",
    "step_per_seq_s",
    "step_per_token_s",
)


def _scaled(profile: LatencyProfile, scale: float) -> LatencyProfile:
    return profile.with_changes(**{f: getattr(profile, f) * scale for f in LATENCY_FIELDS})


def _machine_scale(rows: list[dict[str, Any]]) -> float:
    """Geometric mean over apps of real / simulated median sequential single query."""
    ratios = [
        r["real_single_median_s"] / r["sim_single_median_s"]
        for r in rows
        if r["scheme"] == "sequential" and r["sim_single_median_s"] > 0
    ]
    return float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default="naive_rag,advanced_rag,search_augmented")
    parser.add_argument("--schemes", default="primflow,sequential,parallel")
    parser.add_argument("--workload", default="balanced", choices=sorted(WORKLOADS))
    parser.add_argument("--placement", default="shared", choices=("shared", "dedicated"))
    parser.add_argument("--rate", type=float, default=0.25, help="Poisson rate (q/s)")
    parser.add_argument("--num-questions", type=int, default=3)
    parser.add_argument("--num-load-queries", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--llm-model", default="steps", choices=("steps", "calls"))
    parser.add_argument(
        "--cores-model",
        default="shared",
        choices=("shared", "devices"),
        help="simulated engines share this machine's cores, or each has its own device",
    )
    parser.add_argument("--profiles", type=Path, help="profiles saved by `primflow profile`")
    parser.add_argument("--repeats", type=int, default=3, help="profiling runs per point")
    parser.add_argument("--sim-only", action="store_true", help="reuse the JSON's real side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="sim_calibration")
    parser.add_argument(
        "--fake", action="store_true", help="fake engines (checks the harness only)"
    )
    return parser.parse_args()


def _profiles_from(data: dict[str, Any]) -> dict[str, LatencyProfile]:
    return {name: LatencyProfile.from_dict(p) for name, p in data.items()}


def _measured_profiles(args: argparse.Namespace, config: BenchConfig) -> dict[str, LatencyProfile]:
    if args.profiles is not None:
        return load_profiles(args.profiles)
    if args.fake:  # the fakes run the default profiles
        return dict(DEFAULT_PROFILES)
    from primflow.commands.profile import ENGINES, profile_engines

    kinds = {str(kind) for kind in engines_for_apps(config.apps).values()}
    names = [name for name in ENGINES if name in kinds]
    profiles = asyncio.run(profile_engines(names, args.repeats, args.seed))
    save_profiles(profiles, OUT_DIR / f"{args.name}_profiles.json")
    return profiles


async def _run_real(config: BenchConfig, is_fake: bool) -> list[dict[str, Any]]:
    from primflow.session.factories import embedded_factory, fake_factory

    factory = fake_factory() if is_fake else embedded_factory()
    cases = await run_benchmark(config, factory, log=_log)
    return [
        {
            "app": case.app,
            "scheme": case.scheme,
            "single_latencies_s": [q["latency_s"] for q in case.single],
            "single_engine_s": [_engine_s(q["timeline"]) for q in case.single],
            "single_decisions": [q.get("decisions", {}) for q in case.single],
            "single_questions": [q["question"] for q in case.single],
            "load": [
                {k: run[k] for k in ("rate_qps", "mean_s", "p50_s", "p95_s", "num_completed")}
                for run in case.load
            ],
        }
        for case in cases
    ]


def _engine_s(timeline: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds a query's primitives spent at each engine (start to end, summed)."""
    by_engine: dict[str, float] = {}
    for primitive in timeline:
        engine, start_s, end_s = primitive["engine"], primitive["start_s"], primitive["end_s"]
        if engine is None or start_s is None or end_s is None:
            continue
        by_engine[engine] = by_engine.get(engine, 0.0) + end_s - start_s
    return by_engine


def _mean_by_engine(samples: list[dict[str, float]]) -> dict[str, float]:
    names = sorted({name for sample in samples for name in sample})
    return {n: round(float(np.mean([s.get(n, 0.0) for s in samples])), 4) for n in names}


def _compare(
    real: dict[str, Any],
    config: BenchConfig,
    profiles: dict[str, LatencyProfile],
    llm_model: str,
    shared_cores: float | None,
) -> dict[str, Any]:
    """The simulated side of one (app, scheme) and its error against the real one."""
    app, scheme = real["app"], real["scheme"]
    documents = load_documents(config.docs or samples_dir() / "docs")
    changes = config.query_changes(config.workloads[0])
    # The branches the real judge took (its most frequent choice per decision node),
    # so the simulated queries run the same primitives.
    decisions = _majority(real.get("single_decisions", []))

    def run(questions: list[str], arrivals_s: list[float]) -> list[QueryRecord]:
        workload = app_workload(
            app,
            scheme,
            DEFAULT_PROFILES,  # the passes see what the real session's passes see
            baselines="modules",
            questions=questions,
            documents=documents,
            config_changes=changes,
        )
        sim = SimConfig(
            rate_qps=1.0,
            duration_s=1.0,
            hardware="cpu",
            arrivals_s=tuple(arrivals_s),
            llm_model=llm_model,
            profiles=profiles,
            max_num_llm_calls=32,  # the embedded LLM's n_seq_max (EmbeddedSettings)
            web_snippet_chars=_web_snippet_chars(),
            # shared placement: the engines split this machine's cores (cores.py)
            shared_cores=shared_cores,
            llm_decisions=decisions,
        )
        result = simulate(workload, sim)
        failed = [q.error for q in result.queries if q.error]
        if failed:
            raise RuntimeError(f"{app}/{scheme}: simulated queries failed: {failed[:2]}")
        return result.queries

    sim_single = [run([q], [0.0])[0] for q in real["single_questions"]]
    row: dict[str, Any] = {
        "app": app,
        "scheme": scheme,
        "real_single_s": float(np.mean(real["single_latencies_s"])),
        "sim_single_s": float(np.mean([q.latency_s for q in sim_single])),
        "real_single_median_s": float(np.median(real["single_latencies_s"])),
        "sim_single_median_s": float(np.median([q.latency_s for q in sim_single])),
        "decisions": decisions,
        # Where the time goes, per engine (mean over the single queries).
        "real_single_engine_s": _mean_by_engine(real.get("single_engine_s", [])),
        "sim_single_engine_s": _mean_by_engine([q.engine_s for q in sim_single]),
    }
    row["single_error"] = row["sim_single_s"] / row["real_single_s"] - 1
    for load in real["load"]:
        rng = np.random.default_rng(config.seed)  # the benchmark's arrivals (benchmark.py)
        gaps = rng.exponential(1.0 / load["rate_qps"], size=config.num_load_queries)
        arrivals = [float(t) for t in np.cumsum(gaps) - gaps[0]]
        questions = questions_for(config.num_load_queries, app)
        sim_load = run(questions, arrivals)
        row["rate_qps"] = load["rate_qps"]
        row["real_load_s"] = load["mean_s"]
        row["sim_load_s"] = float(np.mean([q.latency_s for q in sim_load]))
        row["load_error"] = row["sim_load_s"] / row["real_load_s"] - 1
    return row


def _majority(samples: list[dict[str, str]]) -> dict[str, str]:
    counts: dict[str, dict[str, int]] = {}
    for sample in samples:
        for node, choice in sample.items():
            by_choice = counts.setdefault(node, {})
            by_choice[choice] = by_choice.get(choice, 0) + 1
    return {node: max(sorted(c), key=lambda k: c[k]) for node, c in counts.items()}


def _web_snippet_chars() -> int:
    """The mean text length of the embedded web search's corpus (samples/web)."""
    texts = [
        json.loads(line)["text"]
        for path in sorted((samples_dir() / "web").glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return int(np.mean([len(text) for text in texts])) if texts else 0


def _result_line(
    rows: list[dict[str, Any]], rows_scaled: list[dict[str, Any]], scale: float
) -> str:
    def summary(chosen: list[dict[str, Any]]) -> str:
        single = [abs(r["single_error"]) for r in chosen]
        load = [abs(r["load_error"]) for r in chosen if "load_error" in r] or [0.0]
        return (
            f"mean |error| single {100 * np.mean(single):.1f}% (max {100 * max(single):.1f}%), "
            f"load {100 * np.mean(load):.1f}% (max {100 * max(load):.1f}%)"
        )

    parts = [
        f"{r['app']}/{r['scheme']} {100 * r['single_error']:+.1f}%"
        + (f" load {100 * r['load_error']:+.1f}%" if "load_error" in r else "")
        for r in rows_scaled
    ]
    return (
        f"bench_sim_calibration: profiles as measured: {summary(rows)}; "
        f"scaled x{scale:.2f} to the runs' machine speed: {summary(rows_scaled)}; "
        + "; ".join(parts)
    )


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
