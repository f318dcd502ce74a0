"""`primflow simulate APP`: run an app (or a scheduling scenario) on simulated engines.

`--spec FILE` (with `--import` for its function steps) simulates a workflow of your own;
its sample query is a generic question over the sample documents unless `--question`
and `--docs` say otherwise.

The real runtime runs on latency-model fake engines on a virtual clock, so a minute
of Poisson traffic takes a fraction of a second and a seeded run is exactly
reproducible. Prints mean / p50 / p95 / p99 latency per scheme and batching policy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from primflow.api.documents import DocumentError, load_documents
from primflow.api.spec import SpecError
from primflow.apps import APPS, App, is_spec_path
from primflow.commands.app_args import AppChoiceError, add_app_arguments, chosen_app
from primflow.engines.policies import POLICIES
from primflow.engines.profile import LatencyProfile
from primflow.session.stack import StackError, read_profiles
from primflow.sim.engines import LLM_MODELS
from primflow.sim.profiles import PROFILE_PRESETS, preset
from primflow.sim.scenarios import SCENARIOS
from primflow.sim.simulator import SimConfig, SimResult, simulate
from primflow.sim.workload import BASELINE_MODES, QUERY_SOURCES, SCHEMES, Workload, app_workload


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__)
    add_app_arguments(parser, extra_names=[f"{s} (scenario)" for s in SCENARIOS])
    parser.add_argument("--question", help="the sample query's question (default: the app's)")
    parser.add_argument("--docs", help="the sample query's documents (default: the app's)")
    parser.add_argument("--rate", type=float, default=1.0, help="requests per second (Poisson)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals")
    parser.add_argument(
        "--policy",
        default="topology",
        help=f"batching policy: {', '.join(POLICIES)}; comma-separate to compare several",
    )
    parser.add_argument("--compare", action="store_true", help="run every policy side by side")
    parser.add_argument(
        "--scheme",
        default="primflow",
        help=f"{', '.join(SCHEMES)} (passes on / pruning only / none); comma-separate several",
    )
    parser.add_argument(
        "--instances", default="", help="instances per engine, e.g. llm=2,embedder=1"
    )
    parser.add_argument(
        "--hardware", default="gpu", help=f"profile preset: {', '.join(PROFILE_PRESETS)}"
    )
    parser.add_argument(
        "--queries", default="sample", help=f"query data: {', '.join(QUERY_SOURCES)}"
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        help="profiles saved by `primflow profile` (JSON); they replace the preset's "
        "for the engines they name",
    )
    parser.add_argument(
        "--llm-model",
        default="calls",
        help=f"simulated LLM: {', '.join(LLM_MODELS)} (per-call latency with a load "
        "slowdown / shared engine steps from the profile's step costs)",
    )
    parser.add_argument(
        "--baselines",
        default="graph",
        help=f"how the baseline schemes run: {', '.join(BASELINE_MODES)} (their graphs on "
        "the runtime / module by module, as `primflow bench` runs them)",
    )
    parser.add_argument(
        "--max-tokens", type=int, help="answer tokens per LLM call (default: the app's)"
    )
    parser.add_argument(
        "--web-search-calls",
        type=int,
        default=1,
        help="batches one web search instance runs at once (an API serves many callers)",
    )
    parser.add_argument(
        "--web-snippet-chars",
        type=int,
        default=0,
        help="characters of text per web-search result (default 0: short titles)",
    )
    parser.add_argument(
        "--shared-cores",
        type=float,
        help="the LLM, embedder and reranker share this many cores (one host); "
        "default: each engine on its own device",
    )
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="batching wait (ms)")
    parser.add_argument("--seed", type=int, default=0, help="seed for arrivals and queries")
    parser.add_argument("--json", action="store_true", help="print results as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        policies = list(POLICIES) if args.compare else _choices(args.policy, POLICIES, "policy")
        schemes = _choices(args.scheme, SCHEMES, "scheme")
        config = _config(args)
        app = None if _is_scenario(args) else _with_sample(chosen_app(args), args)
        results = [
            simulate(_workload(args, app, scheme, config), _with_policy(config, policy))
            for scheme in schemes
            for policy in policies
        ]
    except (
        AppChoiceError,
        SpecError,
        DocumentError,
        ValueError,
        FileNotFoundError,
        StackError,
    ) as err:
        print(f"primflow simulate: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"results": [r.to_dict() for r in results]}, indent=2))
    else:
        print(_table(args, results))
    return 0


def _choices(text: str, known: Any, what: str) -> list[str]:
    chosen = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in chosen if c not in known]
    if bad or not chosen:
        raise ValueError(
            f"unknown {what} {', '.join(map(repr, bad)) or repr(text)} (known: {', '.join(known)})"
        )
    return list(dict.fromkeys(chosen))


def parse_instances(text: str) -> dict[str, int]:
    """``"llm=2,embedder=1"`` -> ``{"llm": 2, "embedder": 1}``; errors name the bad part."""
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, count = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--instances: expected ENGINE=COUNT, got {part!r}")
        try:
            counts[name.strip()] = int(count)
        except ValueError:
            raise ValueError(
                f"--instances: count of {name.strip()!r} is not a whole number: {count!r}"
            ) from None
    return counts


def _config(args: argparse.Namespace) -> SimConfig:
    for flag, value in (("--rate", args.rate), ("--duration", args.duration)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{flag} must be a positive number, got {value}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    preset(args.hardware)
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    return SimConfig(
        rate_qps=args.rate,
        duration_s=args.duration,
        instances=parse_instances(args.instances),
        hardware=args.hardware,
        seed=args.seed,
        max_wait_ms=args.max_wait_ms,
        llm_model=args.llm_model,
        profiles=_profiles(args.profiles),
        max_num_web_search_calls=args.web_search_calls,
        web_snippet_chars=args.web_snippet_chars,
        shared_cores=args.shared_cores,
    )


def _profiles(path: Path | None) -> dict[str, LatencyProfile]:
    if path is None:
        return {}
    if not path.is_file():
        raise ValueError(f"--profiles: no such file {str(path)!r}")
    profiles = read_profiles(path)
    if not profiles:
        raise ValueError(f"--profiles: {str(path)!r} holds no profiles")
    return profiles


def _with_policy(config: SimConfig, policy: str) -> SimConfig:
    return dataclasses.replace(config, policy=policy)


def _is_scenario(args: argparse.Namespace) -> bool:
    if args.spec is not None or args.app is None or is_spec_path(args.app):
        return False
    if args.app not in APPS and args.app not in SCENARIOS:
        known = ", ".join([*APPS, *SCENARIOS])
        raise ValueError(
            f"unknown app or scenario {args.app!r} (known: {known}); or pass --spec FILE"
        )
    return args.app in SCENARIOS


def _workload(
    args: argparse.Namespace, app: App | None, scheme: str, config: SimConfig
) -> Workload:
    if app is None:
        return SCENARIOS[args.app]()
    changes = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}
    return app_workload(
        app,
        scheme,
        config.profiles_by_kind(),
        queries=args.queries,
        baselines=args.baselines,
        config_changes=changes,
    )


def _with_sample(app: App, args: argparse.Namespace) -> App:
    """``app`` with ``--question`` / ``--docs`` as its sample query."""
    if args.question is not None and not args.question.strip():
        raise ValueError("--question is empty")
    changes: dict[str, Any] = {}
    if args.question:
        changes["sample_question"] = args.question
    if args.docs:
        documents = load_documents(args.docs)
        changes["sample_documents"] = lambda: documents
    return dataclasses.replace(app, **changes) if changes else app


def _title(args: argparse.Namespace) -> str:
    return str(args.app) if args.spec is None else str(args.spec)


def _table(args: argparse.Namespace, results: list[SimResult]) -> str:
    first = results[0]
    lines = [
        f"{_title(args)} on simulated {args.hardware} engines: {args.rate:g} q/s Poisson for "
        f"{args.duration:g} s (seed {args.seed}), {first.stats.num_queries} queries",
        f"{'scheme':<11}{'policy':<15}{'mean_s':>8}{'p50_s':>8}{'p95_s':>8}{'p99_s':>8}{'ok':>12}",
    ]
    for result in results:
        stats = result.stats
        scheme = str(result.info.get("scheme", "-"))
        lines.append(
            f"{scheme:<11}{result.config.policy:<15}{stats.mean_s:>8.3f}{stats.p50_s:>8.3f}"
            f"{stats.p95_s:>8.3f}{stats.p99_s:>8.3f}"
            f"{f'{stats.num_completed}/{stats.num_queries}':>12}"
        )
    return "\n".join(lines)
